"""SU-SAM's regular adapter on the attention output of a SAM block (the "space" adapter)."""
from typing import Any, Optional

import torch
from mmseg.registry import MODELS

from .parallel_adapter import ParallelAdapter


@MODELS.register_module()
class AttentionAdapter(ParallelAdapter):
    """A bottleneck on the attention output a, for a block's ``attn_adapter`` slot.

    The block computes ``a = a + attn_adapter(a)`` before the residual
    ``x1 = x + a``. SU-SAM's ``Space_Adapter`` (docs/methods/samptx-authors.md
    §3.2) returns ``a + A(a)`` (an inner skip) and the block adds half of it:
    ``a <- a + 0.5 * (a + A(a)) = 1.5 a + 0.5 A(a)``, so with ``inner_skip=True``
    (the default) the attention branch is scaled by 1 + scale even where A is
    zero, and no initialisation makes the adapted block SAM's.
    ``inner_skip=False, zero_init=True`` does: the output is then ``scale * A(a)``
    with ``up`` at zero. The unit is the same as :class:`ParallelAdapter`'s
    (``A = up o GELU o down``, r = 0.25 * C, PyTorch's default init), with the
    same parameter count ``2 * C * r + r + C`` (295,872 at ViT-B). It reads no
    conditioning, and applies token-wise, so windowing does not change it.

    Args:
        embed_dims: the block width C (filled in by :func:`attach_adapters`).
        bottleneck: hidden width r; ``None`` takes ``int(ratio * C)``.
        ratio: r / C when ``bottleneck`` is None.
        scale: fixed factor on the returned value.
        zero_init: start ``up`` at zero.
        inner_skip: return ``scale * (a + A(a))`` instead of ``scale * A(a)``.
    """

    conditioned = False

    def __init__(self, embed_dims: int, bottleneck: Optional[int] = None, ratio: float = 0.25,
                 scale: float = 0.5, zero_init: bool = False, inner_skip: bool = True) -> None:
        super().__init__(embed_dims, bottleneck=bottleneck, ratio=ratio, scale=scale,
                         zero_init=zero_init)
        self.inner_skip = inner_skip

    def forward(self, a: torch.Tensor, cond: Any = None) -> torch.Tensor:
        """a: (B, H, W, C) attention output -> (B, H, W, C), added to a by the block."""
        out = self.branch(a, cond)
        if self.inner_skip:
            out = a + out
        return self.scale * out
