"""Foreground Dice and IoU for binary (medical/microscopy) segmentation."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from .binary_utils import foreground_areas


@METRICS.register_module()
class BinaryDiceMetric(BaseMetric):
    """Dice and IoU of the foreground class (label 1), per image and overall.

    Each data sample needs ``pred_sem_seg`` and ``gt_sem_seg`` (1 =
    foreground); ``gt_sem_seg == ignore_index`` pixels are left out.

    Reported keys, in percent (0..100), unrounded:

    - ``Dice`` / ``IoU``: dataset level, from the foreground areas summed over
      all images -- the foreground entry of mmseg's ``IoUMetric`` with
      ``iou_metrics=['mIoU', 'mDice']``;
    - ``mDice`` / ``mIoU``: mean over images of each image's score (what most
      few-shot medical papers report); an image where prediction and ground
      truth are both empty scores ``empty_score``.

    Args:
        ignore_index (int): Ground-truth value left out. Defaults to 255.
        empty_score (float): Per-image score (0..1) when both masks are empty.
            Defaults to 1.0.
    """

    default_prefix: Optional[str] = None

    def __init__(self,
                 ignore_index: int = 255,
                 empty_score: float = 1.0,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.empty_score = empty_score

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Keep each sample's foreground areas."""
        for sample in data_samples:
            self.results.append(foreground_areas(sample, self.ignore_index))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute dataset-level and per-image-mean Dice and IoU (percent)."""
        if not results:
            raise ValueError('BinaryDiceMetric got no sample to evaluate')
        a = np.asarray(results, np.float64)  # inter, union, pred, gt
        inter, union, pred, gt = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        empty = union == 0
        img_iou = np.where(empty, self.empty_score,
                           inter / np.maximum(union, 1))
        img_dice = np.where(empty, self.empty_score,
                            2 * inter / np.maximum(pred + gt, 1))
        tot_union = union.sum()
        dice = 2 * inter.sum() / (pred.sum() + gt.sum()) if tot_union else \
            self.empty_score
        iou = inter.sum() / tot_union if tot_union else self.empty_score
        return OrderedDict(
            Dice=float(dice * 100),
            IoU=float(iou * 100),
            mDice=float(img_dice.mean() * 100),
            mIoU=float(img_iou.mean() * 100))
