"""Soft IoU (Jaccard) loss on probabilities, per sample, as the SAM-PTx authors train."""
from typing import Optional

import torch
import torch.nn as nn
from mmseg.registry import MODELS

REDUCTIONS = ('none', 'mean', 'sum')


@MODELS.register_module()
class SoftIoULoss(nn.Module):
    """``1 - (sum(p g) + eps) / (sum(p) + sum(g) - sum(p g) + eps)`` for each sample.

    The third term of the SAM-PTx authors' loss (docs/methods/samptx-authors.md §6.5), with
    sums over all pixels of a sample. It equals mmseg's ``binary_tversky_loss`` with
    alpha = beta = 1 and smooth = eps (TP + FP + FN = sum(p) + sum(g) - sum(p g)); mmseg's
    ``TverskyLoss`` itself cannot express it: it requires alpha + beta = 1 and applies
    a softmax over classes.

    Args:
        eps: added to numerator and denominator (1e-6 in the authors' code).
        use_sigmoid: apply a sigmoid to ``pred`` (logits) first; False for probabilities.
        reduction: ``'none'`` (per sample), ``'mean'`` or ``'sum'``.
        loss_weight: multiplies the loss.
    """

    def __init__(self, eps: float = 1e-6, use_sigmoid: bool = False, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f'SoftIoULoss: reduction must be one of {REDUCTIONS}, got {reduction!r}')
        if eps < 0:
            raise ValueError(f'SoftIoULoss: eps must be >= 0, got {eps}')
        self.eps = eps
        self.use_sigmoid = use_sigmoid
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                valid: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Soft IoU loss.

        Args:
            pred: (N, ...) probabilities (logits with ``use_sigmoid``).
            target: (N, ...) in [0, 1], the same shape.
            valid: optional (N, ...) 0/1 weights; pixels at 0 count in no sum.

        Returns:
            (N,) with ``reduction='none'``, else a scalar.
        """
        if pred.shape != target.shape:
            raise ValueError(f'SoftIoULoss: pred {tuple(pred.shape)} and target '
                             f'{tuple(target.shape)} differ in shape')
        p = pred.sigmoid() if self.use_sigmoid else pred
        g = target.to(p.dtype)
        if valid is not None:
            p, g = p * valid, g * valid
        p, g = p.flatten(1), g.flatten(1)
        inter = (p * g).sum(1)
        loss = 1 - (inter + self.eps) / (p.sum(1) + g.sum(1) - inter + self.eps)
        if self.reduction == 'mean':
            loss = loss.mean()
        elif self.reduction == 'sum':
            loss = loss.sum()
        return self.loss_weight * loss
