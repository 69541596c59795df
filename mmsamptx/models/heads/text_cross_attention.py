"""Decoder tokens attending to a text embedding before SAM's two-way transformer
(SAM-PTx's text -> mask-decoder baseline)."""
import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class TextCrossAttention(nn.Module):
    """One cross-attention block from the decoder's tokens to a projected text embedding.

    The SAM-PTx authors' text -> mask-decoder baseline (docs/methods/samptx-authors.md §3.8).
    With ``t~ = W t + b`` (B, 1, C) and the decoder's tokens x = [IoU token, mask tokens,
    sparse prompts] (B, T, C):

        x <- LN(x + MHA(Q=x, K=V=t~))
        x <- LN(x + FFN(x)),   FFN = Linear(C, C) -> ReLU -> Linear(C, C)

    with the same LayerNorm (shared gamma, beta) both times. Everything after, from the
    two-way transformer on, is SAM's. With a single key the softmax weight is exactly 1,
    so the attention output is ``out_proj(v_proj(t~))`` for every token: a text-dependent
    bias, followed by LN and the FFN.
    Parameters: ``D*C + C`` (text) + ``4*C*C + 4*C`` (MHA) + ``2*C`` (LN) + ``2*(C*C + C)``
    (FFN) = 131,328 + 263,168 + 512 + 131,584 = 526,592 for D = 512, C = 256.

    Args:
        text_dims: D, the text embedding width (512 for CLIP ViT-B/16).
        embed_dims: C, the decoder width (256).
        num_heads: attention heads (8, the two-way transformer's).
    """

    def __init__(self, text_dims: int = 512, embed_dims: int = 256, num_heads: int = 8) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'TextCrossAttention: embed_dims={embed_dims} is not divisible by '
                             f'num_heads={num_heads}')
        self.text_proj = nn.Linear(text_dims, embed_dims)
        self.attn = nn.MultiheadAttention(embed_dims, num_heads, bias=True, batch_first=True)
        self.norm = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.ReLU(),
                                 nn.Linear(embed_dims, embed_dims))

    def forward(self, tokens: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Mix text into the decoder's tokens.

        Args:
            tokens: (B, T, C) output tokens followed by the sparse prompt tokens.
            text: (B, D) text embeddings.

        Returns:
            (B, T, C).
        """
        if text.dim() != 2 or text.shape[0] != tokens.shape[0] or text.shape[1] != self.text_proj.in_features:
            raise ValueError(f'TextCrossAttention: text must be ({tokens.shape[0]}, '
                             f'{self.text_proj.in_features}), got {tuple(text.shape)}')
        t = self.text_proj(text.to(self.text_proj.weight.dtype))[:, None, :].to(tokens.dtype)
        attended, _ = self.attn(tokens, t, t, need_weights=False)
        tokens = self.norm(tokens + attended)
        return self.norm(tokens + self.ffn(tokens))
