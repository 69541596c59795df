"""A text embedding as one more sparse token of SAM's prompt encoder
(SAM-PTx's text -> prompt-encoder baseline)."""
from typing import Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class TextPromptToken(nn.Module):
    """One sparse prompt token made from a text embedding, appended after SAM's point tokens.

    The SAM-PTx authors' text -> prompt-encoder baseline (docs/methods/samptx-authors.md §3.7):
    ``token = W t + e_text``, with ``W`` a bias-free projection initialised N(0, 0.02²) and
    ``e_text`` a learned text-type embedding (N(0, 1), as ``nn.Embedding``), the way SAM adds a
    type embedding to each point's positional encoding. Without text a learned "no-text"
    token takes its place, so the number of sparse tokens never depends on the text.
    The token goes after SAM's own sparse tokens, its not-a-point padding included:
    5 points + 1 pad + 1 text = 7 tokens. The dense path is untouched.

    The authors do not state how the no-text token is initialised; it is an
    ``nn.Embedding(1, C)`` here (N(0, 1)), like SAM's own not-a-point token.
    Parameters: ``D * C + 2 * C`` (512 x 256 + 256 + 256 = 131,584).

    Args:
        text_dims: D, the text embedding width (512 for CLIP ViT-B/16).
        embed_dims: C, SAM's prompt width (256).
        init_std: standard deviation of the projection's normal initialisation.
    """

    def __init__(self, text_dims: int = 512, embed_dims: int = 256, init_std: float = 0.02) -> None:
        super().__init__()
        if text_dims <= 0 or embed_dims <= 0:
            raise ValueError(f'TextPromptToken: text_dims and embed_dims must be positive, '
                             f'got {text_dims} and {embed_dims}')
        self.proj = nn.Linear(text_dims, embed_dims, bias=False)
        nn.init.normal_(self.proj.weight, std=init_std)
        self.type_embed = nn.Embedding(1, embed_dims)
        self.no_text_embed = nn.Embedding(1, embed_dims)

    def forward(self, text: Optional[torch.Tensor] = None, batch_size: int = 1) -> torch.Tensor:
        """The token to append to the sparse prompt embeddings.

        Args:
            text: (B, D) text embeddings, or None for the no-text token.
            batch_size: B when ``text`` is None.

        Returns:
            (B, 1, C).
        """
        if text is None:
            return self.no_text_embed.weight[None].expand(batch_size, -1, -1)
        if text.dim() != 2 or text.shape[1] != self.proj.in_features:
            raise ValueError(f'TextPromptToken: text must be (B, {self.proj.in_features}), '
                             f'got {tuple(text.shape)}')
        token = self.proj(text.to(self.proj.weight.dtype)) + self.type_embed.weight
        # 0 * no-text: the unused token stays in the graph with a zero gradient, so that DDP
        # without find_unused_parameters sees every parameter used when all samples have text.
        return (token + 0 * self.no_text_embed.weight)[:, None, :]
