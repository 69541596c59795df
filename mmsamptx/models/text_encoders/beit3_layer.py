"""One BEiT-3 encoder layer: pre-LN multiway self-attention and FFN with sub-LN (Magneto).

Follows torchscale's ``EncoderLayer`` with BEiT-3's settings (arXiv 2208.10442;
docs/beit3.md): pre-LN, sub-LN inside both branches, residual scale 1, no
dropout, exact (erf) GELU computed in fp32, softmax computed in fp32, padded
keys masked with -inf. Every LayerNorm and Linear is multiway (vision expert A on
the first ``split`` tokens, language expert B on the rest); the attention itself
runs over the whole joint sequence. Parameter names are torchscale's.
"""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath
from torch import Tensor, nn

from .multiway import Multiway

LN_EPS = 1e-5


def _multiway_linear(in_features: int, out_features: int) -> Multiway:
    return Multiway(nn.Linear(in_features, out_features), nn.Linear(in_features, out_features))


def _multiway_norm(dims: int) -> Multiway:
    return Multiway(nn.LayerNorm(dims, eps=LN_EPS), nn.LayerNorm(dims, eps=LN_EPS))


class BEiT3Attention(nn.Module):
    """Multi-head self-attention over the joint sequence with multiway projections.

    a = softmax_fp32(q k^T / sqrt(d) with padded keys at -inf) v, then
    out = W_o(LN_inner(a)) (the sub-LN before the output projection).

    Args:
        embed_dims: channels C.
        num_heads: heads; the head dim is C / num_heads.
        fused_attn: use ``F.scaled_dot_product_attention`` instead of the
            explicit maths. Both agree to float rounding (tested); the explicit
            path reproduces torchscale's operation order exactly.
    """

    def __init__(self, embed_dims: int, num_heads: int, fused_attn: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims {embed_dims} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.scale = self.head_dim ** -0.5
        self.fused_attn = fused_attn
        # Registration order = torchscale's state_dict order.
        self.k_proj = _multiway_linear(embed_dims, embed_dims)
        self.v_proj = _multiway_linear(embed_dims, embed_dims)
        self.q_proj = _multiway_linear(embed_dims, embed_dims)
        self.out_proj = _multiway_linear(embed_dims, embed_dims)
        self.inner_attn_ln = _multiway_norm(embed_dims)

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, split: int, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """x: (B, N, C), key_padding_mask: (B, N) bool True at padding -> (B, N, C)."""
        b, n, c = x.shape
        q = self._heads(self.q_proj(x, split) * self.scale)  # (B, h, N, d)
        k = self._heads(self.k_proj(x, split))
        v = self._heads(self.v_proj(x, split))
        if self.fused_attn:
            keep = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0)
        else:
            scores = q @ k.transpose(-2, -1)  # (B, h, N, N)
            if key_padding_mask is not None:
                scores = scores.masked_fill(key_padding_mask[:, None, None, :], float('-inf'))
            probs = F.softmax(scores, dim=-1, dtype=torch.float32).type_as(scores)
            a = probs @ v
        a = a.transpose(1, 2).reshape(b, n, c)
        return self.out_proj(self.inner_attn_ln(a, split), split)


class BEiT3FeedForward(nn.Module):
    """One expert's FFN: fc2(LN_sub(GELU_fp32(fc1(x)))), LN_sub over the hidden width."""

    def __init__(self, embed_dims: int, feedforward_channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(embed_dims, feedforward_channels)
        self.fc2 = nn.Linear(feedforward_channels, embed_dims)
        self.ffn_layernorm = nn.LayerNorm(feedforward_channels, eps=LN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, n, C) -> (B, n, C)."""
        h = self.fc1(x)
        h = F.gelu(h.float()).type_as(h)
        return self.fc2(self.ffn_layernorm(h))


class BEiT3Layer(nn.Module):
    """x = x + attn(LN_attn(x)); x = x + FFN(LN_ffn(x)), every LN and FFN multiway.

    Args:
        embed_dims, num_heads, feedforward_channels: the layer's sizes.
        drop_path: stochastic-depth probability of both residual branches.
        fused_attn: see :class:`BEiT3Attention`.
    """

    def __init__(self, embed_dims: int, num_heads: int, feedforward_channels: int,
                 drop_path: float = 0.0, fused_attn: bool = True) -> None:
        super().__init__()
        self.self_attn = BEiT3Attention(embed_dims, num_heads, fused_attn=fused_attn)
        self.self_attn_layer_norm = _multiway_norm(embed_dims)
        self.ffn = Multiway(BEiT3FeedForward(embed_dims, feedforward_channels),
                            BEiT3FeedForward(embed_dims, feedforward_channels))
        self.final_layer_norm = _multiway_norm(embed_dims)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor, split: int, key_padding_mask: Optional[Tensor] = None) -> Tensor:
        """x: (B, N, C); tokens [0, split) are vision, the rest text -> (B, N, C)."""
        x = x + self.drop_path(self.self_attn(self.self_attn_layer_norm(x, split), split,
                                              key_padding_mask))
        return x + self.drop_path(self.ffn(self.final_layer_norm(x, split), split))
