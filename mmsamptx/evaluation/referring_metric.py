"""Referring segmentation metrics: cIoU and gIoU as EVF-SAM and LISA report them."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from .binary_utils import foreground_areas


@METRICS.register_module()
class ReferringMetric(BaseMetric):
    """cIoU and gIoU of the referred-object mask (RefCOCO/+/g).

    Each data sample (one image-expression pair) needs ``pred_sem_seg`` and
    ``gt_sem_seg`` with 1 = referred object; ``gt_sem_seg == ignore_index``
    pixels are left out.

    - ``cIoU`` (cumulative IoU) = sum of intersections / sum of unions over
      all samples;
    - ``gIoU`` (generalised IoU) = mean over samples of each sample's IoU, a
      sample whose prediction and target are both empty counting as IoU 1
      (LISA's ``acc_iou[union == 0] = 1.0``).

    Both are reported in percent (0..100), unrounded.

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
        """Keep each sample's foreground intersection and union."""
        for sample in data_samples:
            inter, union, _, _ = foreground_areas(sample, self.ignore_index)
            self.results.append((inter, union))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute cIoU and gIoU (percent) from the kept areas."""
        if not results:
            raise ValueError('ReferringMetric got no sample to evaluate')
        inter = np.array([r[0] for r in results], np.float64)
        union = np.array([r[1] for r in results], np.float64)
        per_sample = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        ciou = inter.sum() / union.sum() if union.sum() > 0 else 1.0
        return OrderedDict(
            cIoU=float(ciou * 100), gIoU=float(per_sample.mean() * 100))
