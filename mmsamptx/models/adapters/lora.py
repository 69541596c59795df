"""LoRA on the fused q/k/v projection of a SAM encoder block (SAMed's and CellSeg1's encoder LoRA)."""
import math
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS

#: the three parts of SAM's fused ``qkv`` output, in the order the attention splits them.
QKV_PARTS = ('q', 'k', 'v')


@MODELS.register_module()
class LoRAQKV(nn.Module):
    """SAM's fused ``qkv`` Linear with low-rank updates of some of its parts.

    LoRA (Hu et al., arXiv 2106.09685) adds ``(alpha / r) * B_t A_t x`` to part
    ``t`` of the projection ``W x + b``; ``A_t`` is (r, C), ``B_t`` is (C, r).
    SAMed (arXiv 2304.13785) and CellSeg1 (arXiv 2412.01410) put it on the query
    and value parts of every image-encoder block at rank 4, with no factor
    (``alpha = r``); docs/ptsam_baselines.md. ``A`` starts as peft's and
    SAMed's (Kaiming-uniform, ``a = sqrt(5)``), ``B`` at zero, so the untrained
    layer is SAM's. Dropout acts on the LoRA input, as in peft.

    The module takes the place of the block's ``attn.qkv`` (slot ``'attn.qkv'``
    of :func:`attach_adapters`): :meth:`wrap` adopts that Linear's ``weight``
    and ``bias`` Parameters themselves, so their state-dict keys
    (``blocks.i.attn.qkv.weight``) and their ``requires_grad`` stay SAM's and an
    official checkpoint loads into them; the LoRA keys
    (``blocks.i.attn.qkv.lora_A.q.weight`` ...) are extra keys.
    Parameters: ``len(targets) * 2 * C * r``.

    Args:
        embed_dims: the block width C (filled in by :func:`attach_adapters`).
        rank: r.
        targets: which parts of ``('q', 'k', 'v')`` get an update.
        alpha: the update is scaled by ``alpha / rank``; ``None`` takes
            ``alpha = rank`` (factor 1, SAMed's and CellSeg1's form).
        dropout: dropout probability on the LoRA input (0: none).
    """

    #: LoRA reads no per-sample conditioning: one encoder pass serves every class.
    conditioned = False

    def __init__(self, embed_dims: int, rank: int = 4, targets: Sequence[str] = ('q', 'v'),
                 alpha: Optional[float] = None, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f'LoRAQKV rank must be a positive int, got {rank!r}')
        targets = (targets,) if isinstance(targets, str) else tuple(targets)
        bad = [t for t in targets if t not in QKV_PARTS]
        if not targets or bad or len(set(targets)) != len(targets):
            raise ValueError(f'LoRAQKV targets must be distinct parts of {QKV_PARTS}, got {targets!r}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'LoRAQKV dropout must be in [0, 1), got {dropout!r}')
        self.embed_dims = embed_dims
        self.rank = rank
        self.targets = tuple(t for t in QKV_PARTS if t in targets)  # in the output's order
        self.alpha = float(rank if alpha is None else alpha)
        self.scaling = self.alpha / rank
        self.lora_A = nn.ModuleDict({t: nn.Linear(embed_dims, rank, bias=False) for t in self.targets})
        self.lora_B = nn.ModuleDict({t: nn.Linear(rank, embed_dims, bias=False) for t in self.targets})
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_lora_parameters()
        # the wrapped projection's own Parameters, adopted by wrap()
        self.register_parameter('weight', None)
        self.register_parameter('bias', None)

    def reset_lora_parameters(self) -> None:
        """A: Kaiming-uniform (a = sqrt(5), as peft and SAMed); B: zero (the layer starts as SAM's)."""
        for t in self.targets:
            nn.init.kaiming_uniform_(self.lora_A[t].weight, a=math.sqrt(5))
            nn.init.zeros_(self.lora_B[t].weight)

    @property
    def in_features(self) -> int:
        return self.embed_dims

    @property
    def out_features(self) -> int:
        return 3 * self.embed_dims

    def wrap(self, qkv: nn.Linear) -> 'LoRAQKV':
        """Adopt ``qkv``'s weight and bias (the same Parameter objects) and return self.

        ``qkv`` must be a ``nn.Linear(C, 3 C)``; this module then replaces it.
        """
        if not isinstance(qkv, nn.Linear) or tuple(qkv.weight.shape) != (3 * self.embed_dims,
                                                                          self.embed_dims):
            shape = tuple(qkv.weight.shape) if isinstance(qkv, nn.Linear) else type(qkv).__name__
            raise ValueError(f'LoRAQKV(embed_dims={self.embed_dims}) wraps an nn.Linear of weight '
                             f'({3 * self.embed_dims}, {self.embed_dims}), got {shape}')
        if self.weight is not None:
            raise ValueError('this LoRAQKV already wraps a projection')
        self.weight = qkv.weight
        self.bias = qkv.bias
        # the LoRA matrices live where the projection does (a meta or GPU model stays so)
        self.to(device=qkv.weight.device)
        return self

    def delta_weight(self) -> torch.Tensor:
        """The (3C, C) update ``scaling * B_t A_t`` in the rows of each target (zero elsewhere)."""
        c = self.embed_dims
        ref = self.lora_A[self.targets[0]].weight
        delta = ref.new_zeros(3 * c, c)
        for t in self.targets:
            i = QKV_PARTS.index(t)
            delta[i * c:(i + 1) * c] = self.scaling * self.lora_B[t].weight @ self.lora_A[t].weight
        return delta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (..., C) -> (..., 3C): ``W x + b`` plus each target's low-rank update."""
        if self.weight is None:
            raise RuntimeError('LoRAQKV has no projection to adapt: attach it with '
                               "attach_adapters(encoder, cfg, slot='attn.qkv') or call wrap(linear)")
        out = F.linear(x, self.weight, self.bias)
        parts = list(out.split(self.embed_dims, dim=-1))
        h = self.dropout(x)
        for t in self.targets:
            i = QKV_PARTS.index(t)
            update = self.lora_B[t](self.lora_A[t](h))
            parts[i] = parts[i] + self.scaling * update.to(parts[i].dtype)
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, rank={self.rank}, targets={self.targets}, '
                f'alpha={self.alpha:g}')


def lora_qkv_param_count(embed_dims: int, rank: int, num_targets: int, num_blocks: int) -> int:
    """Closed form of the trainable LoRA parameters: ``blocks * targets * 2 * C * r``."""
    return num_blocks * num_targets * 2 * embed_dims * rank
