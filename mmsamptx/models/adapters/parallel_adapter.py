"""A bottleneck branch parallel to a SAM block's MLP (SU-SAM's spatial Parallel-Adapter)."""
from typing import Any, Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS


def bottleneck_width(embed_dims: int, bottleneck: Optional[int], ratio: float) -> int:
    """The hidden width r: ``bottleneck`` if given, else ``int(ratio * embed_dims)``."""
    if bottleneck is None:
        if ratio <= 0:
            raise ValueError(f'ratio must be positive, got {ratio}')
        bottleneck = int(ratio * embed_dims)
    if bottleneck <= 0:
        raise ValueError(f'bottleneck must be positive, got {bottleneck} '
                         f'(embed_dims={embed_dims}, ratio={ratio})')
    return int(bottleneck)


@MODELS.register_module()
class ParallelAdapter(nn.Module):
    """``scale * up(GELU(down(h)))``, added to the MLP's output of a SAM block.

    SU-SAM's MLP-side adapter (arXiv 2401.17803; docs/methods/samptx-authors.md
    §3.3, §3.5): the block becomes ``x2 = x1 + MLP(xn) + scale * A(xn)`` with
    ``A = up o GELU o down`` (the authors' ``fc2 o GELU o fc1``), ``xn`` the
    normalised post-attention tokens. By default it is the authors' unit:
    r = 0.25 * C, scale 0.5 and PyTorch's default ``nn.Linear`` initialisation,
    so an untrained adapter already changes SAM's features. ``zero_init=True``
    zeroes ``up``, so the untrained adapter leaves SAM's block unchanged (the
    AdaptFormer-style start; with ``bottleneck=64`` this library's earlier
    default). Parameters: ``2 * C * r + r + C``.

    Args:
        embed_dims: the block width C (filled in by :func:`attach_adapters`).
        bottleneck: hidden width r; ``None`` takes ``int(ratio * C)``.
        ratio: r / C when ``bottleneck`` is None (0.25: r = 192 at ViT-B).
        scale: fixed factor on the branch output.
        zero_init: start ``up`` (weight and bias) at zero.
    """

    #: whether the adapter reads the per-sample conditioning (text); the
    #: segmentor then runs one encoder pass per (image, class) pair.
    conditioned = False

    def __init__(self, embed_dims: int, bottleneck: Optional[int] = None, ratio: float = 0.25,
                 scale: float = 0.5, zero_init: bool = False) -> None:
        super().__init__()
        r = bottleneck_width(embed_dims, bottleneck, ratio)
        self.embed_dims = embed_dims
        self.bottleneck = r
        self.down = nn.Linear(embed_dims, r)
        self.act = nn.GELU()
        self.up = nn.Linear(r, embed_dims)
        self.scale = scale
        self.zero_init = zero_init
        if zero_init:
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def hidden(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """The bottleneck pre-activation: (B, H, W, C) -> (B, H, W, r)."""
        return self.down(h)

    def branch(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """The unscaled bottleneck A(h): (B, H, W, C) -> (B, H, W, C)."""
        return self.up(self.act(self.hidden(h, cond)))

    def forward(self, h: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """h: (B, H, W, C) normalised post-attention tokens -> (B, H, W, C)."""
        return self.scale * self.branch(h, cond)
