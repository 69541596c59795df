"""Multi-head attention with SAM's decomposed relative-position bias, in explicit and fused form."""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """Relative positional embeddings for every (query, key) pair along one axis.

    The table is resized linearly when the grid differs from the one it was
    trained for, and coordinates are rescaled when query and key grids differ
    (SAM, Appendix A; MViTv2's decomposed relative positions).

    Args:
        q_size: number of query positions along the axis.
        k_size: number of key positions along the axis.
        rel_pos: (L, C) table.

    Returns:
        (q_size, k_size, C) embeddings.
    """
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        rel_pos = F.interpolate(
            rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1),
            size=max_rel_dist, mode='linear').reshape(-1, max_rel_dist).permute(1, 0)
    q_scale = max(k_size / q_size, 1.0)
    k_scale = max(q_size / k_size, 1.0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * q_scale
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * k_scale
    relative = (q_coords - k_coords) + (k_size - 1) * k_scale
    return rel_pos[relative.long()]


def rel_pos_terms(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                  q_hw: Tuple[int, int], k_hw: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """The two factors of SAM's decomposed relative-position bias.

    The bias of query ``(y, x)`` and key ``(i, j)`` is ``rel_h[y, x, i] + rel_w[y, x, j]``.

    Args:
        q: (B, q_h * q_w, C) unscaled queries.
        rel_pos_h, rel_pos_w: (L, C) tables for the two axes.
        q_hw, k_hw: query and key grid sizes.

    Returns:
        rel_h (B, q_h * q_w, k_h) and rel_w (B, q_h * q_w, k_w).
    """
    (q_h, q_w), (k_h, k_w) = q_hw, k_hw
    table_h = get_rel_pos(q_h, k_h, rel_pos_h).to(q.dtype)
    table_w = get_rel_pos(q_w, k_w, rel_pos_w).to(q.dtype)
    b, _, c = q.shape
    r_q = q.reshape(b, q_h, q_w, c)
    rel_h = torch.einsum('bhwc,hkc->bhwk', r_q, table_h)
    rel_w = torch.einsum('bhwc,wkc->bhwk', r_q, table_w)
    return rel_h.reshape(b, q_h * q_w, k_h), rel_w.reshape(b, q_h * q_w, k_w)


def decomposed_rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                            q_hw: Tuple[int, int], k_hw: Tuple[int, int]) -> torch.Tensor:
    """The additive attention bias of SAM's decomposed relative positions.

    Args:
        q: (B, q_h * q_w, C) unscaled queries.
        rel_pos_h, rel_pos_w: (L, C) tables for the two axes.
        q_hw, k_hw: query and key grid sizes.

    Returns:
        (B, q_h * q_w, k_h * k_w) bias to add to the attention logits.
    """
    rel_h, rel_w = rel_pos_terms(q, rel_pos_h, rel_pos_w, q_hw, k_hw)
    return (rel_h[:, :, :, None] + rel_w[:, :, None, :]).flatten(2)


def key_position_one_hot(k_hw: Tuple[int, int], dtype: torch.dtype,
                         device: torch.device) -> torch.Tensor:
    """(k_h * k_w, k_h + k_w): for key ``(i, j)`` a 1 in column ``i`` and in column ``k_h + j``."""
    k_h, k_w = k_hw
    rows = torch.eye(k_h, dtype=dtype, device=device).repeat_interleave(k_w, dim=0)
    cols = torch.eye(k_w, dtype=dtype, device=device).repeat(k_h, 1)
    return torch.cat([rows, cols], dim=1)


def sdpa_with_rel_pos(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                      rel: Optional[torch.Tensor] = None,
                      key_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``softmax(q k^T * scale + bias) v`` through ``scaled_dot_product_attention``, with no mask.

    The decomposed bias ``rel_h[q, i] + rel_w[q, j]`` is a dot product: append
    ``rel = [rel_h, rel_w]`` (B, L_q, R) to the scaled queries and the keys'
    one-hot positions ``key_pos`` (L_k, R) to the keys, and
    ``q' . k' = scale * q . k + bias`` exactly. SDPA then runs its mask-free
    kernels (flash attention on the CPU and GPU), which neither materialise the
    (L_q, L_k) bias nor keep the attention matrix for the backward pass. All
    head dims are zero-padded to one multiple of 8 (zeros add nothing to a
    dot product; the output's padding is dropped).

    Args:
        q, k, v: (B, L, C).
        rel: (B, L_q, R) bias factors of each query (zero rows: no bias), or None.
        key_pos: (L_k, R) one-hot key positions (zero rows: no bias), with ``rel``.

    Returns:
        (B, L_q, C).
    """
    if rel is None:
        return _sdpa(q, k, v, scale)
    b, _, c = q.shape
    r = rel.shape[-1]
    pad = -(-(c + r) // 8) * 8 - c - r
    # [q, rel / scale] . [k, key_pos] * scale = scale * q . k + bias
    q = torch.cat([q, rel.to(q.dtype) / scale, q.new_zeros(b, q.shape[1], pad)], dim=-1)
    key_pos = F.pad(key_pos.to(k.dtype), (0, pad))
    k = torch.cat([k, key_pos.expand(b, -1, -1)], dim=-1)
    v = F.pad(v, (0, r + pad))
    return _sdpa(q, k, v, scale)[..., :c]


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """SDPA of (B, L, C) tensors, given as (B, 1, L, C): the CPU flash kernel takes 4-d inputs only
    (3-d ones fall back to the materialising math path)."""
    return F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=scale)[:, 0]


class RelPosAttention(nn.Module):
    """SAM's image-encoder attention: multi-head, optional decomposed relative positions.

    Parameter names (``qkv``, ``proj``, ``rel_pos_h``, ``rel_pos_w``) follow the
    official checkpoints. ``fused=True`` computes the same maths with
    ``scaled_dot_product_attention`` and no mask, the relative-position bias
    folded into extra head dimensions (:func:`sdpa_with_rel_pos`); nothing of
    size (L, L) is kept for the backward pass. ``fused=False`` is the explicit
    reference (``softmax(q k^T * scale + bias) v`` written out).
    ``fused='no_grad'``: fused where no gradient flows through the attention
    (inference, or a frozen block whose input needs no gradient), explicit where
    one does (on a CPU the explicit backward of short windowed sequences is the
    faster one).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 use_rel_pos: bool = False, input_size: Optional[Tuple[int, int]] = None,
                 fused: Union[bool, str] = True) -> None:
        super().__init__()
        if fused not in (True, False, 'no_grad'):
            raise ValueError(f"fused must be True, False or 'no_grad', got {fused!r}")
        if dim % num_heads:
            raise ValueError(f'embed dim {dim} is not divisible by num_heads {num_heads}')
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = head_dim ** -0.5
        self.fused = fused
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.use_rel_pos = use_rel_pos
        if use_rel_pos:
            if input_size is None:
                raise ValueError('input_size is required when use_rel_pos=True')
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, head_dim))

    def forward(self, x: torch.Tensor, prompts: Optional[torch.Tensor] = None):
        """x: (B, H, W, C) -> (B, H, W, C).

        With ``prompts`` (B, P, C), P >= 1, the P prompt tokens join the H * W grid
        tokens as queries, keys and values; they carry no relative position (their
        rows and columns of the bias are zero). Returns then the pair
        ``(x (B, H, W, C), prompts (B, P, C))``. ``prompts=None`` is exactly SAM's
        attention.
        """
        if prompts is not None:
            return self._forward_with_prompts(x, prompts)
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        # q, k, v: (B * num_heads, H * W, head_dim)
        q, k, v = qkv.reshape(3, b * self.num_heads, h * w, -1).unbind(0)
        out = self._attend(q, k, v, (h, w))
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)

    @property
    def rel_pos_requires_grad(self) -> bool:
        return self.use_rel_pos and (self.rel_pos_h.requires_grad or self.rel_pos_w.requires_grad)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Tuple[int, int],
                num_prompts: int = 0) -> torch.Tensor:
        """Attention of (B * heads, L, head_dim) q, k, v over an (h, w) grid (+ prompt tokens).

        The first ``h * w`` tokens are the grid; the last ``num_prompts`` tokens
        carry no relative position (zero bias in their rows and columns).
        """
        n = hw[0] * hw[1]
        fused = self.fused is True or (self.fused == 'no_grad' and not (
            torch.is_grad_enabled() and (q.requires_grad or self.rel_pos_requires_grad)))
        if fused:
            rel = key_pos = None
            if self.use_rel_pos:
                rel = torch.cat(rel_pos_terms(q[:, :n], self.rel_pos_h, self.rel_pos_w, hw, hw), -1)
                key_pos = key_position_one_hot(hw, q.dtype, q.device)
                if num_prompts:
                    rel = F.pad(rel, (0, 0, 0, num_prompts))
                    key_pos = F.pad(key_pos, (0, 0, 0, num_prompts))
            return sdpa_with_rel_pos(q, k, v, self.scale, rel, key_pos)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        if self.use_rel_pos:
            bias = decomposed_rel_pos_bias(q[:, :n], self.rel_pos_h, self.rel_pos_w, hw, hw)
            attn = attn + (F.pad(bias, (0, num_prompts, 0, num_prompts)) if num_prompts else bias)
        return attn.softmax(dim=-1) @ v

    def _forward_with_prompts(self, x: torch.Tensor, prompts: torch.Tensor
                              ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Attention over grid + prompt tokens: (B, H, W, C), (B, P, C) -> the same shapes."""
        b, h, w, c = x.shape
        if prompts.dim() != 3 or prompts.shape[0] != b or prompts.shape[2] != c:
            raise ValueError(f'prompts must be ({b}, P, {c}) for tokens of shape {tuple(x.shape)}, '
                             f'got {tuple(prompts.shape)}')
        n, p = h * w, prompts.shape[1]
        seq = torch.cat([x.reshape(b, n, c), prompts.to(x.dtype)], dim=1)       # (B, n + P, C)
        qkv = self.qkv(seq).reshape(b, n + p, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * self.num_heads, n + p, -1).unbind(0)
        out = self._attend(q, k, v, (h, w), num_prompts=p)
        out = self.proj(out.view(b, self.num_heads, n + p, -1).permute(0, 2, 1, 3).reshape(b, n + p, -1))
        return out[:, :n].reshape(b, h, w, -1), out[:, n:]
