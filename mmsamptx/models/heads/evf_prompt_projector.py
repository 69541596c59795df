"""EVF-SAM's prompt projector: the fused vision CLS feature -> one sparse SAM prompt token."""
import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmseg.registry import MODELS


@MODELS.register_module()
class EVFPromptProjector(BaseModule):
    """Linear(D, D) -> ReLU -> Linear(D, C): EVF-SAM's ``text_hidden_fcs[0]`` (arXiv 2406.20076, Sec. 3).

    ``layers`` keeps the official indices (0 and 2; 1 is the ReLU), so the
    released keys ``text_hidden_fcs.0.{0,2}.{weight,bias}`` load by renaming the
    prefix only. D x D + D + C x D + C parameters (1,312,000 at D = 1024, C = 256).

    Args:
        in_dims: the fusion encoder's width D (1024 for BEiT-3-L).
        out_dims: SAM's prompt width C (256).
    """

    def __init__(self, in_dims: int = 1024, out_dims: int = 256,
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_dims = in_dims
        self.out_dims = out_dims
        self.layers = nn.Sequential(nn.Linear(in_dims, in_dims), nn.ReLU(),
                                    nn.Linear(in_dims, out_dims))

    def forward(self, cls_feature: torch.Tensor) -> torch.Tensor:
        """cls_feature: (E, D) fused vision-CLS outputs -> (E, 1, C) sparse prompt tokens."""
        if cls_feature.dim() != 2 or cls_feature.shape[-1] != self.in_dims:
            raise ValueError(f'EVFPromptProjector expects (E, {self.in_dims}) features, got '
                             f'{tuple(cls_feature.shape)}')
        return self.layers(cls_feature.to(self.layers[0].weight.dtype))[:, None, :]
