"""CLIP-Guided SAM's semantic adapter: a parallel bottleneck fed CLIP text, vision and similarity."""
from typing import Any, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

from .condition import CLIPCondition
from .parallel_adapter import ParallelAdapter
from .parallel_text_adapter import read_text


@MODELS.register_module()
class SemanticAdapter(ParallelAdapter):
    """The MLP-side bottleneck of CLIP-Guided SAM, its input fused with CLIP's features.

    CLIP-Guided SAM (arXiv 2605.24807, §3.3, Fig. 4; docs/methods/
    clip-guided-sam.md §3.2, §3.4) adds, in each semantic block,

    ``out = scale * up(GELU(down(h + U_l + T)))``

    to the MLP's output, with h = LN2(x1) the normalised post-attention tokens
    (B, H, W, C) and, from the :class:`CLIPCondition` ``cond``:

    - ``T = GELU(text_proj(t))``: the text t (B, Cc) projected to C with bias,
      broadcast over the grid (``use_text``);
    - ``U_l``: the fused CLIP tokens ``U = [use_vision] V̂ + [use_similarity] s``
      (B, 1 + N, Cc), s broadcast over Cc, projected with ``vision_proj``
      (Cc -> C with bias), the CLS row dropped, the N patches reshaped to their
      grid (``cond.patch_grid()``, square by default) and resized bilinearly
      (align_corners False) to the block's (H, W). The defaults give the
      authors' ``U = V̂ + s`` (§2.5).

    The switches are the modality ablation of the paper's Table 6. A modality
    that is off reads nothing from ``cond`` and builds no projection: with
    vision and similarity both off there is no ``vision_proj``; with everything
    off it is the plain :class:`ParallelAdapter` (Table 6's "parallel only").
    Text only, it is :class:`ParallelTextAdapter` with ``text_input='tokens'``,
    and then ``cond`` may also be the bare (B, Cc) text tensor.

    By default it is the authors' unit (r = 0.25 C, scale 0.5, PyTorch's
    default ``nn.Linear`` initialisation, no inner skip). Parameters:
    ``2 C r + r + C`` plus ``Cc_t C + C`` for text and ``Cc_v C + C`` for the
    vision path: 295,872 + 2 * 393,984 = 1,083,840 at ViT-B (C = 768,
    Cc = 512, r = 192).

    Args:
        embed_dims: the block width C (filled in by :func:`attach_adapters`).
        text_dims: Cc of the text embedding t (512 for CLIP ViT-B/16).
        vision_dims: Cc of the vision tokens V̂ (512 for CLIP ViT-B/16).
        bottleneck: hidden width r; ``None`` takes ``int(ratio * C)``.
        ratio: r / C when ``bottleneck`` is None.
        scale: fixed factor on the branch output.
        zero_init: start ``up`` at zero (the authors do not).
        use_text: add T.
        use_vision: put V̂ in U.
        use_similarity: put s in U.
    """

    def __init__(self, embed_dims: int, text_dims: int = 512, vision_dims: int = 512,
                 bottleneck: Optional[int] = None, ratio: float = 0.25, scale: float = 0.5,
                 zero_init: bool = False, use_text: bool = True, use_vision: bool = True,
                 use_similarity: bool = True) -> None:
        super().__init__(embed_dims, bottleneck=bottleneck, ratio=ratio, scale=scale,
                         zero_init=zero_init)
        self.text_dims = text_dims
        self.vision_dims = vision_dims
        self.use_text = bool(use_text)
        self.use_vision = bool(use_vision)
        self.use_similarity = bool(use_similarity)
        #: read by the encoder's ``first_conditioned_block``: whether ``cond`` is read at all
        self.conditioned = self.use_text or self.use_vision or self.use_similarity
        self.text_proj = nn.Linear(text_dims, embed_dims) if self.use_text else None
        self.vision_proj = (nn.Linear(vision_dims, embed_dims)
                            if self.use_vision or self.use_similarity else None)

    def text_tokens(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """T: (B, 1, 1, C), the projected text broadcast over the grid of h (B, H, W, C)."""
        text = read_text(cond, h.shape[0], self.text_dims, type(self).__name__)
        return self.act(self.text_proj(text.to(h.dtype)))[:, None, None, :]

    def fused_clip_tokens(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """U (B, 1 + N, Cc) from ``cond``'s vision and similarity tokens, checked against h (B, H, W, C)."""
        name = type(self).__name__
        if not isinstance(cond, CLIPCondition):
            raise ValueError(f'{name} with use_vision={self.use_vision}, use_similarity='
                             f'{self.use_similarity} needs a CLIPCondition as text_embeds, got '
                             f'{type(cond).__name__}')
        if cond.batch_size != h.shape[0]:
            raise ValueError(f'{name}: the CLIPCondition holds {cond.batch_size} samples, the tokens '
                             f'{h.shape[0]}')
        u = None
        if self.use_vision:
            if cond.vision is None:
                raise ValueError(f'{name} has use_vision=True but the CLIPCondition carries no vision')
            if cond.vision.shape[2] != self.vision_dims:
                raise ValueError(f'{name}: the CLIP vision width is {cond.vision.shape[2]} but the '
                                 f'adapter was built for vision_dims={self.vision_dims}')
            u = cond.vision.to(h.dtype)
        if self.use_similarity:
            if cond.similarity is None:
                raise ValueError(f'{name} has use_similarity=True but the CLIPCondition carries no '
                                 'similarity')
            s = cond.similarity.to(h.dtype)  # (B, 1 + N, 1), the same for every channel
            u = s.expand(-1, -1, self.vision_dims) if u is None else u + s
        return u

    def semantic_tokens(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """U_l: (B, H, W, C), the projected CLIP patches resized to the grid of h (B, H, W, C)."""
        u = self.vision_proj(self.fused_clip_tokens(h, cond))[:, 1:]  # (B, N, C), CLS dropped
        gh, gw = cond.patch_grid()
        u = u.reshape(u.shape[0], gh, gw, u.shape[2]).permute(0, 3, 1, 2)
        u = F.interpolate(u, size=h.shape[1:3], mode='bilinear', align_corners=False)
        return u.permute(0, 2, 3, 1)

    def hidden(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """h: (B, H, W, C), cond: a CLIPCondition (or (B, Cc) text, text only) -> (B, H, W, r)."""
        x = h
        if self.vision_proj is not None:
            x = x + self.semantic_tokens(h, cond)
        if self.text_proj is not None:
            x = x + self.text_tokens(h, cond)
        return self.down(x)

    def extra_repr(self) -> str:
        return (f'use_text={self.use_text}, use_vision={self.use_vision}, '
                f'use_similarity={self.use_similarity}, scale={self.scale}')
