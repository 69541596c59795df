from .class_prompted_sam import ClassPromptedSAM
from .evf_sam import EVFSAM
from .point_sampler import PointSampler

__all__ = ['ClassPromptedSAM', 'EVFSAM', 'PointSampler']
