"""Datasets for SAM-PTx benchmarks, registered in mmseg's ``DATASETS``."""
from . import transforms  # noqa: F401  (registers the data transforms)
from .ade20k_split import ADE20KSplitDataset
from .class_pair_dataset import ClassPairDataset
from .coco_object import COCOObjectDataset
from .cod import CODDataset
from .few_shot_binary import FewShotBinaryDataset
from .pascal_voc import PascalVOCSplitDataset
from .published_splits import list_published_splits, published_split
from .refcoco import RefCOCODataset

__all__ = [
    'ADE20KSplitDataset', 'ClassPairDataset', 'COCOObjectDataset', 'CODDataset',
    'FewShotBinaryDataset', 'PascalVOCSplitDataset', 'RefCOCODataset', 'list_published_splits',
    'published_split'
]
