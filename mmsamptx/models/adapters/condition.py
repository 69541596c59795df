"""The CLIP features that CLIP-Guided SAM hands to the adapters of every encoder block."""
import math
from dataclasses import dataclass, replace
from typing import Any, Optional, Tuple

import torch


@dataclass(frozen=True)
class CLIPCondition:
    """Per-sample CLIP conditioning: text, and optionally vision and similarity tokens.

    It travels as the ``cond`` argument of :meth:`SAMImageEncoder.forward`
    (``text_embeds``) down to every block's adapters, like the (M, D) text
    tensor of SAM-PTx. Adapters that read text only
    (:class:`ParallelTextAdapter`) take ``.text``; the
    :class:`SemanticAdapter` of CLIP-Guided SAM (arXiv 2605.24807, §3.3; docs/
    methods/clip-guided-sam.md §2.4–2.5) also reads ``.vision`` and
    ``.similarity`` and fuses them itself (``U = V̂ + s``), so a modality can be
    switched off per adapter (Table 6) without a second CLIP pass.

    Vision and similarity tokens are CLIP's full token sequence, **CLS first**,
    as CLIPSurgery puts it out (1 + N tokens; the adapter drops the CLS row,
    as the authors' code does after its projection). The N patch tokens are
    row-major on a ``grid`` of (h, w) patches; ``None`` means square
    (h = w = √N).

    Attributes:
        text: (M, Cc) text embedding t of each sample's class.
        vision: (M, 1 + N, Cc) token-normalised CLIP image features V̂, or None.
        similarity: (M, 1 + N, 1) similarity s = V̂·t, or None.
        grid: (h, w) of the N patch tokens, or None for square.
    """

    text: torch.Tensor
    vision: Optional[torch.Tensor] = None
    similarity: Optional[torch.Tensor] = None
    grid: Optional[Tuple[int, int]] = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, torch.Tensor) or self.text.dim() != 2:
            raise ValueError('CLIPCondition.text must be an (M, Cc) tensor, got '
                             f'{_describe(self.text)}')
        m = self.text.shape[0]
        if self.vision is not None and (self.vision.dim() != 3 or self.vision.shape[0] != m):
            raise ValueError(f'CLIPCondition.vision must be (M={m}, 1+N, Cc), got {_describe(self.vision)}')
        if self.similarity is not None and (self.similarity.dim() != 3 or self.similarity.shape[0] != m
                                            or self.similarity.shape[2] != 1):
            raise ValueError(f'CLIPCondition.similarity must be (M={m}, 1+N, 1), '
                             f'got {_describe(self.similarity)}')
        if (self.vision is not None and self.similarity is not None
                and self.vision.shape[1] != self.similarity.shape[1]):
            raise ValueError(f'CLIPCondition: vision has {self.vision.shape[1]} tokens and similarity '
                             f'{self.similarity.shape[1]}; both are (M, 1+N, ·) with CLS first')
        if self.num_tokens is not None:
            self.patch_grid()  # checks that the N patch tokens fit the grid

    @property
    def batch_size(self) -> int:
        """M, the number of samples."""
        return self.text.shape[0]

    @property
    def num_tokens(self) -> Optional[int]:
        """1 + N, the CLIP tokens (CLS included) of vision / similarity; None if neither is given."""
        for t in (self.vision, self.similarity):
            if t is not None:
                return t.shape[1]
        return None

    def patch_grid(self) -> Tuple[int, int]:
        """(h, w) of the N = num_tokens - 1 patch tokens: ``grid``, or (√N, √N)."""
        tokens = self.num_tokens
        if tokens is None:
            raise ValueError('CLIPCondition carries no vision or similarity tokens, so it has no patch grid')
        n = tokens - 1
        if self.grid is not None:
            h, w = (int(g) for g in self.grid)
            if h * w != n:
                raise ValueError(f'CLIPCondition: grid {tuple(self.grid)} holds {h * w} patches, but the '
                                 f'tokens hold N = {n} (1 + N = {tokens} with CLS)')
            return h, w
        side = math.isqrt(n) if n > 0 else 0
        if side * side != n or n == 0:
            raise ValueError(f'CLIPCondition: N = {n} patch tokens (1 + N = {tokens} with CLS) is not a '
                             'square grid; give grid=(h, w)')
        return side, side

    def index(self, index: Any) -> 'CLIPCondition':
        """The rows ``index`` of every tensor (e.g. an (M,) image-of-sample index): a new condition."""
        return replace(self, text=self.text[index],
                       vision=None if self.vision is None else self.vision[index],
                       similarity=None if self.similarity is None else self.similarity[index])

    def to(self, *args, **kwargs) -> 'CLIPCondition':
        """Every tensor through ``Tensor.to(*args, **kwargs)`` (device or dtype): a new condition."""
        return replace(self, text=self.text.to(*args, **kwargs),
                       vision=None if self.vision is None else self.vision.to(*args, **kwargs),
                       similarity=None if self.similarity is None else self.similarity.to(*args, **kwargs))


def _describe(value: Any) -> str:
    """A value for an error message: a tensor's shape, else its type."""
    if isinstance(value, torch.Tensor):
        return f'shape {tuple(value.shape)}'
    return type(value).__name__

