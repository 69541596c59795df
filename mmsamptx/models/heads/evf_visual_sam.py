"""EVF-SAM's visual model on SAM (ViT image encoder + prompt encoder + mask decoder) for prompt tokens.

:class:`~mmsamptx.models.segmentors.EVFSAM` talks to its visual model through five methods
only, so that a SAM-2 visual model (Hiera trunk, ``no_mem_embed``, high-resolution features,
dynamic multimask) is one more class with the same methods, not a fork of the segmentor:

* ``preprocess(images) -> (batch, input_sizes)``: RGB uint8 images (3, H, W) to the encoder's
  input (B, 3, S, S) and the (h', w') each occupies in it;
* ``encode(batch) -> features``: the frozen image pass, indexable by image along dim 0;
* ``decode(features, image_index, tokens) -> (logits (E, M, h, w), iou (E, M))``: every mask token
  of each prompt, one prompt per row of ``tokens`` (E, 1, C), on image ``image_index[e]``;
* ``select(logits, iou) -> (logits (E, h, w), score (E,))``: the variant's multimask rule;
* ``postprocess(logits, input_size, original_size) -> (E, H, W)``: logits at the original size.
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..backbones.sam_image_encoder import SAMImageEncoder
from ..necks.sam_neck import SAMNeck
from ..utils.sam_checkpoint import load_sam_part, load_sam_state_dict
from .sam_mask_decoder import SAMMaskDecoder
from .sam_prompt_encoder import SAMPromptEncoder

#: SAM's pixel statistics (RGB, 0..255).
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)
#: How the mask among SAM's 4 mask tokens is chosen (docs/evf_sam.md, method notes §3):
#: 'single' token 0 (evf-sam, evf-sam-multitask); 'best_iou' the best predicted IoU among
#: tokens 1-3 (evf-sam2-multitask); 'stability' token 0 unless its stability
#: |z > 0.05| / |z > -0.05| is below 0.98, then 'best_iou' (evf-sam2, eval mode only).
MULTIMASK_RULES = ('single', 'best_iou', 'stability')
STABILITY_DELTA = 0.05
STABILITY_THRESH = 0.98


def resize_longest_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """RGB uint8 (3, H, W) -> float (3, h', w') with the long side ``size``, as SAM's
    ``ResizeLongestSide``: new side ``int(side * size / max(H, W) + 0.5)``, antialiased bilinear,
    rounded to integers (PIL's uint8 output; within one grey level of PIL's integer filter)."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    new = (int(h * scale + 0.5), int(w * scale + 0.5))
    x = image.float()[None]
    if new != (h, w):
        x = F.interpolate(x, size=new, mode='bilinear', align_corners=False, antialias=True)
        x = x.round().clamp(0, 255)
    return x[0]


@MODELS.register_module()
class EVFVisualSAM(BaseModule):
    """SAM (ViT image encoder, neck, prompt encoder, mask decoder) driven by one prompt token.

    The image encoder and neck are frozen and run under ``no_grad`` (EVF-SAM keeps
    SAM's encoder as released). The prompt token (E, 1, 256) is the only sparse
    prompt (no point, no box, no padding point); the dense prompt is SAM's
    ``no_mask_embed`` broadcast over the grid, as EVF-SAM's prompt encoder gives
    for ``text_embeds`` alone.

    State-dict keys are SAM's official ones below ``image_encoder.``,
    ``prompt_encoder.`` and ``mask_decoder.``, except the neck: ``neck.layers.N``
    here is ``image_encoder.neck.N`` there (mapped in
    :mod:`mmsamptx.models.utils.evf_checkpoint`).

    Args:
        arch: SAM encoder arch (``'vit_h'`` for every released EVF-SAM; ``'tiny'`` for tests).
        img_size: SAM's input side S (1024).
        encoder_cfg: extra :class:`SAMImageEncoder` arguments (``fused_attn``,
            ``autocast_dtype``, ``with_cp``, ...).
        decoder: extra :class:`SAMMaskDecoder` arguments.
        train_decoder: train the mask decoder (EVF-SAM: yes; EVF-SAM2: no).
        train_no_mask_embed: train ``prompt_encoder.no_mask_embed`` (EVF-SAM: yes), the
            only prompt-encoder parameter on the text path; the rest stays frozen.
        multimask: one of :data:`MULTIMASK_RULES`.
        checkpoint: an official SAM file or URL (``sam_vit_h_4b8939.pth``) to start
            training from, loaded in :meth:`init_weights`; ``None`` when the segmentor
            loads a released EVF-SAM checkpoint.
    """

    def __init__(self, arch: str = 'vit_h', img_size: int = 1024,
                 encoder_cfg: Optional[dict] = None, decoder: Optional[dict] = None,
                 train_decoder: bool = True, train_no_mask_embed: bool = True,
                 multimask: str = 'single', checkpoint: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if multimask not in MULTIMASK_RULES:
            raise ValueError(f'multimask must be one of {MULTIMASK_RULES}, got {multimask!r}')
        self.img_size = img_size
        self.multimask = multimask
        self.checkpoint = checkpoint
        self.image_encoder = SAMImageEncoder(arch, img_size=img_size, frozen=True,
                                             **(encoder_cfg or {}))
        self.neck = SAMNeck(self.image_encoder.embed_dims, 256, frozen=True)
        self.prompt_encoder = SAMPromptEncoder(256, img_size, self.image_encoder.patch_size)
        self.mask_decoder = SAMMaskDecoder(transformer_dim=256, **(decoder or {}))
        for p in self.prompt_encoder.parameters():
            p.requires_grad = False
        self.prompt_encoder.no_mask_embed.weight.requires_grad = train_no_mask_embed
        for p in self.mask_decoder.parameters():
            p.requires_grad = train_decoder
        self.register_buffer('pixel_mean', torch.tensor(SAM_PIXEL_MEAN).view(3, 1, 1), False)
        self.register_buffer('pixel_std', torch.tensor(SAM_PIXEL_STD).view(3, 1, 1), False)

    @property
    def embed_dims(self) -> int:
        """The prompt token width C (256)."""
        return self.prompt_encoder.embed_dim

    def init_weights(self) -> None:
        """Load SAM's official weights from ``checkpoint`` (all four parts, exactly)."""
        if self.checkpoint is None:
            super().init_weights()
            return
        state = load_sam_state_dict(self.checkpoint)
        load_sam_part(self.image_encoder, self.checkpoint, 'image_encoder.', exclude=('neck.',),
                      state_dict=state)
        load_sam_part(self.neck.layers, self.checkpoint, 'image_encoder.neck.', state_dict=state)
        load_sam_part(self.prompt_encoder, self.checkpoint, 'prompt_encoder.', state_dict=state)
        load_sam_part(self.mask_decoder, self.checkpoint, 'mask_decoder.', state_dict=state)
        self._is_init = True

    def preprocess(self, images: Sequence[torch.Tensor]
                   ) -> Tuple[torch.Tensor, List[Tuple[int, int]]]:
        """RGB uint8 images (3, H, W) -> (B, 3, S, S) normalised, zero-padded bottom/right after
        normalising (SAM's order), and each image's resized (h', w')."""
        batch, sizes = [], []
        for img in images:
            x = resize_longest_side(img, self.img_size)
            x = (x - self.pixel_mean) / self.pixel_std
            sizes.append(tuple(x.shape[-2:]))
            batch.append(F.pad(x, (0, self.img_size - x.shape[-1], 0, self.img_size - x.shape[-2])))
        return torch.stack(batch), sizes

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> image embeddings (B, 256, S/16, S/16), without gradient (frozen SAM)."""
        with torch.no_grad():
            return self.neck(self.image_encoder(batch))[0]

    def decode(self, features: torch.Tensor, image_index: torch.Tensor, tokens: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """All mask tokens for E prompt tokens.

        Args:
            features: (B, 256, h, w) image embeddings from :meth:`encode`.
            image_index: (E,) long, the image of each prompt.
            tokens: (E, 1, 256) prompt tokens (the only sparse prompts).

        Returns:
            mask logits (E, 4, 4h, 4w) and predicted IoUs (E, 4), float32.
        """
        e = tokens.shape[0]
        dense = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            e, -1, *features.shape[-2:])
        masks, iou = self.mask_decoder.predict_masks(
            features.index_select(0, image_index), self.prompt_encoder.get_dense_pe(),
            tokens.to(dense.dtype), dense)
        return masks.float(), iou.float()

    def select(self, logits: torch.Tensor, iou: torch.Tensor
               ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(E, 4, h, w), (E, 4) -> the variant's mask (E, h, w) and its predicted IoU (E,)."""
        rows = torch.arange(logits.shape[0], device=logits.device)
        best = iou[:, 1:].argmax(dim=1) + 1
        if self.multimask == 'single' or (self.multimask == 'stability' and self.training):
            pick = torch.zeros_like(best)
        elif self.multimask == 'best_iou':
            pick = best
        else:
            z = logits[:, 0].flatten(1)
            inter = (z > STABILITY_DELTA).sum(-1).float()
            union = (z > -STABILITY_DELTA).sum(-1).float()
            stability = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
            pick = torch.where(stability >= STABILITY_THRESH, torch.zeros_like(best), best)
        return logits[rows, pick], iou[rows, pick]

    def postprocess(self, logits: torch.Tensor, input_size: Tuple[int, int],
                    original_size: Tuple[int, int]) -> torch.Tensor:
        """SAM's ``postprocess_masks``: (E, h, w) -> bilinear to S², crop to ``input_size``,
        bilinear to ``original_size`` -> (E, H, W)."""
        x = F.interpolate(logits[:, None], size=(self.img_size, self.img_size), mode='bilinear',
                          align_corners=False)
        x = x[..., :input_size[0], :input_size[1]]
        return F.interpolate(x, size=tuple(original_size), mode='bilinear',
                             align_corners=False)[:, 0]
