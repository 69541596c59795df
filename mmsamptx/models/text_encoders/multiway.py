"""BEiT-3's multiway routing: one module per modality, chosen by sequence position.

BEiT-3 (arXiv 2208.10442) keeps two copies ("experts") of every projection and
LayerNorm: expert ``A`` for the vision tokens and expert ``B`` for the text
tokens. The sequence is [vision tokens | text tokens]; positions ``[0, split)``
go through ``A`` and ``[split, N)`` through ``B`` and the two results are joined
again. The split is an explicit argument of ``forward`` (torchscale stores it as
module state set from outside before each call; here it travels with the data).

Parameter names are ``<name>.A.*`` and ``<name>.B.*``, as in torchscale, so the
official checkpoints load by name.
"""
import torch
from torch import Tensor, nn


class Multiway(nn.Module):
    """Apply ``A`` to the first ``split`` positions of ``x`` and ``B`` to the rest.

    Args:
        expert_a: the vision expert.
        expert_b: the language expert (same kind of module, its own weights).
        dim: the sequence dimension of the input (1 for (B, N, C) tokens).
    """

    def __init__(self, expert_a: nn.Module, expert_b: nn.Module, dim: int = 1) -> None:
        super().__init__()
        self.A = expert_a
        self.B = expert_b
        self.dim = dim

    def forward(self, x: Tensor, split: int) -> Tensor:
        """x: (B, N, ...) along ``dim`` -> (B, N, ...'), A on [0, split), B on [split, N)."""
        n = x.size(self.dim)
        if split >= n:
            return self.A(x)
        if split <= 0:
            return self.B(x)
        x_a, x_b = torch.split(x, [split, n - split], dim=self.dim)
        return torch.cat([self.A(x_a), self.B(x_b)], dim=self.dim)


class MultiwayPositions(nn.Module):
    """Learned absolute positions, one table per modality, each counted from 2.

    Fairseq's convention reserves rows 0 and 1 (for the padding index), so the
    first token of each modality reads row 2. The text positions restart at 2
    after the vision tokens; rows 0 and 1 of both tables are never read.

    Args:
        num_vision: vision tokens (patches + CLS); table ``A`` has ``num_vision + 2`` rows.
        num_text: rows of table ``B`` (torchscale's ``max_source_positions``).
        embed_dims: channels.
    """

    OFFSET = 2

    def __init__(self, num_vision: int, num_text: int, embed_dims: int) -> None:
        super().__init__()
        self.A = nn.Embedding(num_vision + self.OFFSET, embed_dims)
        self.B = nn.Embedding(num_text, embed_dims)

    @property
    def max_text_len(self) -> int:
        """The longest text (in tokens, with ``<s>`` and ``</s>``) the table B holds."""
        return self.B.num_embeddings - self.OFFSET

    def forward(self, num_vision: int, num_text: int) -> Tensor:
        """(1, num_vision + num_text, C): rows 2.. of A, then rows 2.. of B."""
        device = self.A.weight.device
        parts = []
        if num_vision > 0:
            parts.append(self.A(torch.arange(self.OFFSET, num_vision + self.OFFSET, device=device)))
        if num_text > 0:
            parts.append(self.B(torch.arange(self.OFFSET, num_text + self.OFFSET, device=device)))
        return torch.cat(parts, dim=0).unsqueeze(0)
