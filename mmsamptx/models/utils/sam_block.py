"""One transformer block of SAM's image encoder, with adapter slots beside its attention and MLP."""
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

    Two slots are the hook points of the parameter-efficient methods of this
    library (filled by :func:`mmsamptx.models.adapters.attach_adapters`):

    - ``adapter``, beside the MLP: called as ``adapter(h, cond)`` on the
      normalised post-attention tokens ``h = norm2(x1)`` (B, H, W, C); its
      output is added to the MLP's: ``x2 = x1 + mlp(h) + adapter(h, cond)``.
    - ``attn_adapter``, beside attention: called as ``attn_adapter(a, cond)`` on
      the attention output ``a = attn(norm1(x))``, giving
      ``x1 = x + a + attn_adapter(a, cond)``. It must act token-wise (SU-SAM
      applies it inside each window, before un-partition; token-wise it is the
      same after, without the padding tokens).

    ``None`` in both (the default) is exactly SAM's block.
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
        self.attn_adapter: Optional[nn.Module] = None

    def forward(self, x: torch.Tensor, cond: Any = None, prompts: Optional[torch.Tensor] = None):
        """x: (B, H, W, C); cond: per-sample conditioning for the adapters (e.g. (B, D)).

        Returns (B, H, W, C). With ``prompts`` (B, P, C) (visual prompt tokens,
        see :meth:`forward_with_prompts`) returns the pair ``(x, prompts)``.
        """
        if prompts is not None:
            return self.forward_with_prompts(x, cond, prompts)
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = x.shape[1:3]
            x, pad_hw = window_partition(x, self.window_size)
            x = self.attn(x)
            x = window_unpartition(x, self.window_size, pad_hw, hw)
        else:
            x = self.attn(x)
        if self.attn_adapter is not None:
            x = x + self.attn_adapter(x, cond)
        x = shortcut + x
        h = self.norm2(x)
        out = self.mlp(h)
        if self.adapter is not None:
            out = out + self.adapter(h, cond)
        return x + out

    def forward_with_prompts(self, x: torch.Tensor, cond: Any, prompts: torch.Tensor
                             ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The block on grid tokens x (B, H, W, C) plus P prompt tokens (B, P, C).

        Prompt tokens go through the same norms, attention, MLP and adapters as
        the grid tokens. In a windowed block the same P tokens are appended to
        every window's sequence (every window attends to them, and they to the
        window); their attention output is the mean of their per-window outputs,
        and ``attn_adapter`` acts on that mean. In a global block they are
        appended once to the whole sequence. They get no relative-position bias.
        P = 0 is exactly :meth:`forward`.

        Returns:
            (B, H, W, C) and (B, P, C).
        """
        if prompts.shape[1] == 0:
            return self.forward(x, cond), prompts
        b = x.shape[0]
        shortcut, p_shortcut = x, prompts
        x, p = self.norm1(x), self.norm1(prompts)
        if self.window_size > 0:
            hw = x.shape[1:3]
            x, pad_hw = window_partition(x, self.window_size)      # (B * nW, ws, ws, C), b-major
            num_windows = x.shape[0] // b
            x, p = self.attn(x, p.repeat_interleave(num_windows, dim=0))
            x = window_unpartition(x, self.window_size, pad_hw, hw)
            p = p.view(b, num_windows, *p.shape[1:]).mean(dim=1)
        else:
            x, p = self.attn(x, p)
        if self.attn_adapter is not None:
            x = x + self.attn_adapter(x, cond)
            p = p + self.attn_adapter(p[:, :, None, :], cond)[:, :, 0]  # (B, P, 1, C) as a grid
        x, p = shortcut + x, p_shortcut + p
        h, hp = self.norm2(x), self.norm2(p)
        out, out_p = self.mlp(h), self.mlp(hp)
        if self.adapter is not None:
            out = out + self.adapter(h, cond)
            out_p = out_p + self.adapter(hp[:, :, None, :], cond)[:, :, 0]  # (B, P, 1, C) as a grid
        return x + out, p + out_p
