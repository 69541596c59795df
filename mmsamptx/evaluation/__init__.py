"""Metrics for SAM-PTx benchmarks, registered in mmseg's ``METRICS``.

Semantic segmentation (ADE20K, COCO object) uses mmseg's ``IoUMetric``.
"""
from .binary_dice_metric import BinaryDiceMetric
from .cod_metric import CODMetric
from .referring_metric import ReferringMetric

__all__ = ['CODMetric', 'ReferringMetric', 'BinaryDiceMetric']
