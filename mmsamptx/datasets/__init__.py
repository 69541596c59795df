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
# PTSAM's datasets (docs/ptsam.md)
from .em_particles import EMParticlesDataset
from .kvasir_seg import KvasirSEGDataset
from .livecell import LIVECellDataset
from .organoid_basic import OrganoidBasicDataset
from .ptsam_binary import PTSAMBinaryDataset

__all__ = [
    'ADE20KSplitDataset', 'ClassPairDataset', 'COCOObjectDataset', 'CODDataset',
    'FewShotBinaryDataset', 'PascalVOCSplitDataset', 'RefCOCODataset', 'list_published_splits',
    'published_split', 'EMParticlesDataset', 'KvasirSEGDataset', 'LIVECellDataset',
    'OrganoidBasicDataset', 'PTSAMBinaryDataset'
]
