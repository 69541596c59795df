"""Referring segmentation metrics: cIoU and gIoU as EVF-SAM and LISA report them."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from .binary_utils import pixel_field, sample_path


def referring_areas(pred: np.ndarray, gt: np.ndarray, ignore_index: int = 255):
    """Per expression: (intersection, union) of the foreground, each of shape (E,).

    ``pred`` and ``gt`` are (E, H, W) or (H, W). Foreground is 1 in both; a pixel
    whose ground truth is ``ignore_index`` is left out. A ground-truth value other
    than 0, 1 and ``ignore_index`` (RefCOCO's overlapping polygons summed to 2) is
    neither target nor ignored: it is out of the target area and of I, but a
    positive prediction there counts in U (the authors' 2-bin histogram).
    """
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in size')
    pred = pred.reshape((-1,) + pred.shape[-2:])
    gt = gt.reshape((-1,) + gt.shape[-2:])
    valid = gt != ignore_index
    p = (pred == 1) & valid
    g = (gt == 1) & valid
    inter = np.count_nonzero(p & g, axis=(1, 2))
    union = np.count_nonzero(p | g, axis=(1, 2))
    return inter, union


@METRICS.register_module()
class ReferringMetric(BaseMetric):
    """cIoU and gIoU of the referred-object masks (RefCOCO/+/g).

    Each data sample holds one expression (``pred_sem_seg`` and ``gt_sem_seg``
    (1, H, W), one sample per sentence) or several (both (E, H, W): an image
    with E expressions, as EVF-SAM evaluates); 1 = referred object,
    ``gt_sem_seg == ignore_index`` pixels are left out. Each expression counts once:

    - ``cIoU`` (cumulative IoU) = sum of intersections / sum of unions over all
      expressions;
    - ``gIoU`` (generalised IoU) = mean over expressions of each one's IoU, an
      expression whose prediction and target are both empty counting as IoU 1
      (LISA's ``acc_iou[union == 0] = 1.0``).

    Both are reported in percent (0..100), unrounded; ``num_expressions`` is logged too.

    Args:
        ignore_index (int): Ground-truth value left out. Defaults to 255.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 ignore_index: int = 255,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each expression's foreground intersection and union."""
        for sample in data_samples:
            pred = pixel_field(sample, 'pred_sem_seg')
            gt = pixel_field(sample, 'gt_sem_seg')
            if pred is None or gt is None:
                raise KeyError(f'data sample {sample_path(sample)} needs pred_sem_seg and gt_sem_seg')
            try:
                inter, union = referring_areas(pred, gt, self.ignore_index)
            except ValueError as e:
                raise ValueError(f'{sample_path(sample)}: {e}') from e
            # one entry per data sample: mmengine trims the collected results to the dataset size
            self.results.append(list(zip(inter.tolist(), union.tolist())))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute cIoU and gIoU (percent) from the kept areas."""
        results = [r for sample in results for r in sample]
        if not results:
            raise ValueError('ReferringMetric got no sample to evaluate')
        inter = np.array([r[0] for r in results], np.float64)
        union = np.array([r[1] for r in results], np.float64)
        per_sample = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        ciou = inter.sum() / union.sum() if union.sum() > 0 else 1.0
        return OrderedDict(
            cIoU=float(ciou * 100), gIoU=float(per_sample.mean() * 100),
            num_expressions=float(len(results)))
