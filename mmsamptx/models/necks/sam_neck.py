"""SAM's image-encoder neck (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d) as an mmseg neck."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..utils.layer_norm_2d import LayerNorm2d
from ..utils.sam_checkpoint import load_sam_part, sam_checkpoint_of


@MODELS.register_module()
class SAMNeck(BaseModule):
    """Project the encoder's last feature map to SAM's 256-channel image embedding.

    ``layers`` holds SAM's ``image_encoder.neck.{0,1,2,3}`` parameters under the
    same indices. Frozen by default.
    """

    def __init__(self, in_channels: int = 768, out_channels: int = 256, frozen: bool = True,
                 checkpoint: Optional[str] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.checkpoint = checkpoint
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            LayerNorm2d(out_channels),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(out_channels),
        )
        if frozen:
            for p in self.parameters():
                p.requires_grad = False

    def init_weights(self) -> None:
        checkpoint = sam_checkpoint_of(self)
        if checkpoint is None:
            super().init_weights()
            return
        load_sam_part(self.layers, checkpoint, 'image_encoder.neck.')
        self._is_init = True

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor]:
        """inputs: feature maps, the last (B, C_in, h, w) is used -> ((B, 256, h, w),)."""
        return (self.layers(inputs[-1]),)
