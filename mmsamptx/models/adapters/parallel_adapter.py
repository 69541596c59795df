"""A bottleneck branch parallel to a SAM block's MLP (the spatial Parallel-Adapter)."""
from typing import Any

import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class ParallelAdapter(nn.Module):
    """``scale * up(act(down(h)))``, added to the MLP's output (AdaptFormer-style).

    The up projection starts at zero, so an untrained adapter leaves SAM's block
    unchanged. Parameters: ``2 * C * r + r + C`` for width C and bottleneck r.

    Args:
        embed_dims: the block width C (filled in by :func:`attach_adapters`).
        bottleneck: hidden width r.
        scale: fixed factor on the branch output.
    """

    #: whether the adapter reads the per-sample conditioning (text); the
    #: segmentor then runs one encoder pass per (image, class) pair.
    conditioned = False

    def __init__(self, embed_dims: int, bottleneck: int = 64, scale: float = 0.5) -> None:
        super().__init__()
        if bottleneck <= 0:
            raise ValueError(f'bottleneck must be positive, got {bottleneck}')
        self.down = nn.Linear(embed_dims, bottleneck)
        self.act = nn.GELU()
        self.up = nn.Linear(bottleneck, embed_dims)
        self.scale = scale
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def hidden(self, h: torch.Tensor, cond: Any) -> torch.Tensor:
        """The bottleneck pre-activation: (B, H, W, C) -> (B, H, W, r)."""
        return self.down(h)

    def forward(self, h: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """h: (B, H, W, C) normalised post-attention tokens -> (B, H, W, C)."""
        return self.scale * self.up(self.act(self.hidden(h, cond)))
