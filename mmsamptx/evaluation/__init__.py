"""Metrics for SAM-PTx benchmarks, registered in mmseg's ``METRICS``.

Semantic segmentation (ADE20K, COCO object) uses mmseg's ``IoUMetric``;
class-prompted samples (one image and one class) use ``ClassWiseIoUMetric``,
the SAM-PTx authors' class-wise binary IoU.
"""
from .binary_dice_metric import BinaryDiceMetric
from .class_wise_iou_metric import ClassWiseIoUMetric
from .cod_metric import CODMetric
from .referring_metric import ReferringMetric

__all__ = ['CODMetric', 'ClassWiseIoUMetric', 'ReferringMetric', 'BinaryDiceMetric']
