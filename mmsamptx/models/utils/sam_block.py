"""One transformer block of SAM's image encoder, with an adapter slot beside its MLP."""
from typing import Any, Optional, Tuple

import torch
import torch.nn as nn

from .rel_pos_attention import RelPosAttention
from .window import window_partition, window_unpartition


class MLPBlock(nn.Module):
    """SAM's two-layer MLP (names ``lin1``, ``lin2`` as in the official checkpoints)."""

    def __init__(self, embedding_dim: int, mlp_dim: int, act: type = nn.GELU) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = act()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., C) -> (..., C)."""
        return self.lin2(self.act(self.lin1(x)))


class SAMBlock(nn.Module):
    """A pre-norm ViT block with windowed or global attention, as in SAM's image encoder.

    ``adapter`` is the hook point of every parameter-efficient method of this
    library: a module called as ``adapter(h, cond)`` on the normalised
    post-attention tokens ``h`` (B, H, W, C), whose output is added to the
    MLP's. The attention path never sees it. ``None`` (the default) is exactly
    SAM's block.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 use_rel_pos: bool = True, window_size: int = 0,
                 input_size: Optional[Tuple[int, int]] = None, fused_attn: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        attn_size = input_size if window_size == 0 else (window_size, window_size)
        self.attn = RelPosAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias,
                                    use_rel_pos=use_rel_pos, input_size=attn_size, fused=fused_attn)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLPBlock(dim, int(dim * mlp_ratio))
        self.window_size = window_size
        self.adapter: Optional[nn.Module] = None

    def forward(self, x: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """x: (B, H, W, C); cond: per-sample conditioning for the adapter (e.g. (B, D)).

        Returns (B, H, W, C).
        """
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = x.shape[1:3]
            x, pad_hw = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, pad_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        h = self.norm2(x)
        out = self.mlp(h)
        if self.adapter is not None:
            out = out + self.adapter(h, cond)
        return x + out
