"""The Parallel-Text adapter of SAM-PTx: a parallel bottleneck conditioned on a CLIP text embedding."""
from typing import Any

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .parallel_adapter import ParallelAdapter


@MODELS.register_module()
class ParallelTextAdapter(ParallelAdapter):
    """``scale * up(act(down(h) + text_proj(t)))``: the class's text steers every token.

    SAM-PTx (arXiv 2508.00213): the frozen CLIP embedding of the class being
    segmented is projected into the bottleneck of a branch parallel to the MLP,
    so the encoder's features become class-conditioned while attention stays
    SAM's. Parameters: ``2 * C * r + r + C + D * r + r``.

    Args:
        embed_dims: block width C.
        text_dims: text embedding width D.
        bottleneck: hidden width r.
        scale: fixed factor on the branch output.
    """

    conditioned = True

    def __init__(self, embed_dims: int, text_dims: int = 512, bottleneck: int = 64,
                 scale: float = 0.5) -> None:
        super().__init__(embed_dims, bottleneck=bottleneck, scale=scale)
        self.text_dims = text_dims
        self.text_proj = nn.Linear(text_dims, bottleneck)

    def hidden(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """h: (B, H, W, C), cond: (B, D) text embeddings -> (B, H, W, r)."""
        if not isinstance(cond, torch.Tensor):
            raise ValueError('ParallelTextAdapter needs text embeddings: call the backbone as '
                             'forward(x, text_embeds) with text_embeds of shape (B, D)')
        if cond.dim() != 2 or cond.shape[0] != h.shape[0] or cond.shape[1] != self.text_dims:
            raise ValueError(f'text_embeds must be ({h.shape[0]}, {self.text_dims}) for this batch, '
                             f'got {tuple(cond.shape)}')
        return self.down(h) + self.text_proj(cond.to(h.dtype))[:, None, None, :]
