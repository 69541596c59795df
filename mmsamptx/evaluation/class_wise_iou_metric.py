"""Class-wise binary IoU of class-prompted predictions, the SAM-PTx authors' mIoU."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger, print_log
from mmseg.registry import METRICS
from prettytable import PrettyTable


GT_INTERPOLATIONS = ('nearest-exact', 'nearest')


def sample_field(sample, name: str):
    """``sample[name]`` of a dict or a ``SegDataSample``; None when absent."""
    if isinstance(sample, dict):
        return sample.get(name, None)
    return getattr(sample, name, None) if name in sample else None


def gt_label_map(sample) -> torch.Tensor:
    """The (H, W) ground-truth label map of a data sample (``gt_sem_seg``)."""
    gt = sample_field(sample, 'gt_sem_seg')
    if gt is None:
        raise KeyError('data sample has no gt_sem_seg to evaluate')
    gt = gt['data'] if isinstance(gt, dict) else gt.data
    gt = torch.as_tensor(gt)
    if gt.dim() == 3:
        gt = gt[0]
    return gt


def resize_labels(labels: torch.Tensor, size, mode: str) -> torch.Tensor:
    """Nearest-resize an (H, W) label map to ``size`` (values kept as they are)."""
    if tuple(labels.shape) == tuple(size):
        return labels
    return F.interpolate(labels[None, None].float(), size=tuple(size), mode=mode)[0, 0].to(
        labels.dtype)


@METRICS.register_module()
class ClassWiseIoUMetric(BaseMetric):
    """Binary IoU per prompted class, summed over the set (samptx-authors.md §6.9).

    Each data sample holds ``pred_class_logits`` (K, h, w), the mask logits of
    the K classes prompted for its image at the decoder's output size,
    ``pred_classes`` (K,) their class ids, and ``gt_sem_seg`` (1, H, W) at the
    original size (after ``reduce_zero_label``). For each prompted class c:

    - prediction: ``logit > 0`` (sigmoid > 0.5);
    - ground truth: ``gt == c``; every other pixel, the ignore value included,
      is a negative, as in the authors' code (§6.6);
    - ``I_c += |pred ∧ gt|`` and ``U_c += |pred ∨ gt|`` over every sample of c
      in the set (all ranks, through ``BaseMetric.collect``).

    ``IoU_c = I_c / (U_c + 1e-10)`` and ``mIoU`` is the mean of ``IoU_c`` over the
    classes with ``U_c > 0``. Classes never prompted are left out: there is no
    false-positive penalty for absent classes and no background class.

    ``size='mask'`` (the authors' protocol) scores at the logits' size: the label
    map is squashed to (h, w) by nearest resizing before the binary GT is taken.
    ``gt_interpolation='nearest-exact'`` (default) samples the label at pixel
    centres, which is PIL's NEAREST (the authors resize with PIL/torchvision) and
    what the decode head does for its losses at the mask size; ``'nearest'`` is
    torch's legacy top-left rule. ``size='full'`` instead upsamples the logits
    bilinearly (``align_corners=False``) to the label map's size.

    The reported ``mIoU`` is in percent (×100), as mmseg's ``IoUMetric``; with the
    default prefix the key is ``classwise/mIoU``. The per-class table (IoU in
    percent, I, U and the number of samples) goes to the current logger.

    Args:
        size (str): ``'mask'`` or ``'full'``. Defaults to 'mask'.
        gt_interpolation (str): ``'nearest-exact'`` or ``'nearest'`` for
            ``size='mask'``. Defaults to 'nearest-exact'.
        collect_device (str): Device for collecting results across ranks.
        prefix (str, optional): Key prefix. Defaults to ``'classwise'``.
    """

    default_prefix: Optional[str] = 'classwise'
    SIZES = ('mask', 'full')
    GT_INTERPOLATIONS = GT_INTERPOLATIONS

    def __init__(self,
                 size: str = 'mask',
                 gt_interpolation: str = 'nearest-exact',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if size not in self.SIZES:
            raise ValueError(f'ClassWiseIoUMetric size must be one of {self.SIZES}, got {size!r}')
        if gt_interpolation not in self.GT_INTERPOLATIONS:
            raise ValueError(f'ClassWiseIoUMetric gt_interpolation must be one of '
                             f'{self.GT_INTERPOLATIONS}, got {gt_interpolation!r}')
        self.size = size
        self.gt_interpolation = gt_interpolation

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep (class, intersection, union) for each prompted class of each sample."""
        for sample in data_samples:
            logits = sample_field(sample, 'pred_class_logits')
            classes = sample_field(sample, 'pred_classes')
            if logits is None or classes is None:
                raise KeyError('data sample needs pred_class_logits (K, h, w) and '
                               'pred_classes (K,) for ClassWiseIoUMetric')
            logits = torch.as_tensor(logits).detach().float().cpu()
            classes = torch.as_tensor(classes).detach().cpu().reshape(-1).long()
            if logits.dim() != 3 or logits.shape[0] != classes.numel():
                raise ValueError(f'pred_class_logits must be (K, h, w) with K = '
                                 f'len(pred_classes) = {classes.numel()}, got '
                                 f'{tuple(logits.shape)}')
            gt = gt_label_map(sample).cpu()
            if self.size == 'mask':
                gt = resize_labels(gt, logits.shape[-2:], self.gt_interpolation)
            else:
                logits = F.interpolate(logits[None], size=tuple(gt.shape), mode='bilinear',
                                       align_corners=False)[0]
            pred = logits > 0
            target = gt[None] == classes[:, None, None]
            inter = (pred & target).flatten(1).sum(1)
            union = (pred | target).flatten(1).sum(1)
            self.results.append(
                np.stack([classes.numpy(), inter.numpy(), union.numpy()], 1).astype(np.int64))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Sum I and U per class over the set; mIoU over the classes with U > 0."""
        if not results:
            raise ValueError('ClassWiseIoUMetric got no sample to evaluate')
        rows = np.concatenate(results, 0)
        classes = np.unique(rows[:, 0])
        table = PrettyTable()
        table.field_names = ['Class', 'IoU', 'I', 'U', 'samples']
        names = (self.dataset_meta or {}).get('classes', None)
        ious = []
        for c in classes:
            sel = rows[:, 0] == c
            inter, union = int(rows[sel, 1].sum()), int(rows[sel, 2].sum())
            iou = inter / (union + 1e-10)
            if union > 0:
                ious.append(iou)
            name = names[c] if names is not None and 0 <= c < len(names) else str(c)
            table.add_row([name, f'{iou * 100:.2f}' if union > 0 else 'nan', inter, union,
                           int(sel.sum())])
        logger: MMLogger = MMLogger.get_current_instance()
        print_log('per class results (class-wise binary IoU):', logger)
        print_log('\n' + table.get_string(), logger=logger)
        out = OrderedDict()
        out['mIoU'] = float(np.mean(ious) * 100) if ious else float('nan')
        return out
