"""The Parallel-Text adapter of SAM-PTx: a parallel bottleneck conditioned on a CLIP text embedding."""
from typing import Any, Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .parallel_adapter import ParallelAdapter

#: where the projected text enters the bottleneck (see :class:`ParallelTextAdapter`)
TEXT_INPUTS = ('tokens', 'bottleneck')


@MODELS.register_module()
class ParallelTextAdapter(ParallelAdapter):
    """A parallel bottleneck beside the MLP whose input carries the class's text.

    SAM-PTx (arXiv 2508.00213): the frozen CLIP embedding t (B, D) of the class
    being segmented steers every token of the MLP-parallel branch, while
    attention stays SAM's. Two forms, by ``text_input``:

    - ``'tokens'`` (default, the authors' ``Block_Text``; docs/methods/
      samptx-authors.md §3.4): ``t' = GELU(text_proj(t))`` with ``text_proj``
      D -> C, broadcast over the grid and added to the tokens before ``down``:
      ``scale * up(GELU(down(h + t')))``. Parameters ``2 * C * r + r + C + D * C + C``
      (689,856 at ViT-B with r = 192).
    - ``'bottleneck'`` (this library's earlier design): ``text_proj`` D -> r, no
      activation, added to the bottleneck pre-activation:
      ``scale * up(GELU(down(h) + text_proj(t)))``. Parameters
      ``2 * C * r + r + C + D * r + r``. With ``bottleneck=64, zero_init=True`` it
      is the earlier default.

    Args:
        embed_dims: block width C.
        text_dims: text embedding width D.
        bottleneck: hidden width r; ``None`` takes ``int(ratio * C)``.
        ratio: r / C when ``bottleneck`` is None.
        scale: fixed factor on the branch output.
        zero_init: start ``up`` at zero (the untrained adapter is then SAM).
        text_input: ``'tokens'`` or ``'bottleneck'``, as above.
    """

    conditioned = True

    def __init__(self, embed_dims: int, text_dims: int = 512, bottleneck: Optional[int] = None,
                 ratio: float = 0.25, scale: float = 0.5, zero_init: bool = False,
                 text_input: str = 'tokens') -> None:
        if text_input not in TEXT_INPUTS:
            raise ValueError(f'text_input must be one of {TEXT_INPUTS}, got {text_input!r}')
        super().__init__(embed_dims, bottleneck=bottleneck, ratio=ratio, scale=scale,
                         zero_init=zero_init)
        self.text_dims = text_dims
        self.text_input = text_input
        width = embed_dims if text_input == 'tokens' else self.bottleneck
        self.text_proj = nn.Linear(text_dims, width)

    def hidden(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """h: (B, H, W, C), cond: (B, D) text embeddings -> (B, H, W, r)."""
        if not isinstance(cond, torch.Tensor):
            raise ValueError('ParallelTextAdapter needs text embeddings: call the backbone as '
                             'forward(x, text_embeds) with text_embeds of shape (B, D)')
        if cond.dim() != 2 or cond.shape[0] != h.shape[0] or cond.shape[1] != self.text_dims:
            raise ValueError(f'text_embeds must be ({h.shape[0]}, {self.text_dims}) for this batch, '
                             f'got {tuple(cond.shape)}')
        t = self.text_proj(cond.to(h.dtype))[:, None, None, :]  # (B, 1, 1, C or r)
        if self.text_input == 'tokens':
            return self.down(h + self.act(t))
        return self.down(h) + t
