"""The Parallel-Text adapter of SAM-PTx: a parallel bottleneck conditioned on a CLIP text embedding."""
from typing import Any, Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS

from .condition import CLIPCondition
from .parallel_adapter import ParallelAdapter

#: where the projected text enters the bottleneck (see :class:`ParallelTextAdapter`)
TEXT_INPUTS = ('tokens', 'bottleneck')


def read_text(cond: Any, batch_size: int, text_dims: int, owner: str) -> torch.Tensor:
    """The (B, D) text embeddings carried by ``cond``, checked against the batch and the adapter.

    Args:
        cond: a (B, D) tensor, or a :class:`CLIPCondition` (its ``.text``).
        batch_size: B, the batch of the tokens the adapter acts on.
        text_dims: D, the text width the adapter was built for.
        owner: the adapter's name, for the error messages.
    """
    text = cond.text if isinstance(cond, CLIPCondition) else cond
    if not isinstance(text, torch.Tensor):
        raise ValueError(f'{owner} needs text embeddings: call the backbone as forward(x, text_embeds) '
                         f'with text_embeds a ({batch_size}, {text_dims}) tensor or a CLIPCondition, '
                         f'got {type(cond).__name__}')
    if text.dim() != 2 or text.shape[0] != batch_size:
        raise ValueError(f'{owner}: text_embeds must be ({batch_size}, {text_dims}) for this batch, '
                         f'got {tuple(text.shape)}')
    if text.shape[1] != text_dims:
        raise ValueError(f'{owner}: text_embeds must be ({batch_size}, {text_dims}) for this batch, '
                         f'got {tuple(text.shape)}: the CLIP text width {text.shape[1]} does not match '
                         f'the adapter\'s text_dims={text_dims}')
    return text


@MODELS.register_module()
class ParallelTextAdapter(ParallelAdapter):
    """A parallel bottleneck beside the MLP whose input carries the class's text.

    SAM-PTx (arXiv 2508.00213): the frozen CLIP embedding t (B, D) of the class
    being segmented steers every token of the MLP-parallel branch, while
    attention stays SAM's. ``cond`` is t itself or a :class:`CLIPCondition`,
    of which it reads ``.text`` (so SAM-PTx and CLIP-Guided SAM share one
    conditioning path). Two forms, by ``text_input``:

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
        """h: (B, H, W, C), cond: (B, D) text embeddings or a CLIPCondition -> (B, H, W, r)."""
        text = read_text(cond, h.shape[0], self.text_dims, type(self).__name__)
        t = self.text_proj(text.to(h.dtype))[:, None, None, :]  # (B, 1, 1, C or r)
        if self.text_input == 'tokens':
            return self.down(h + self.act(t))
        return self.down(h) + t
