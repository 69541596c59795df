from .class_prompted_sam import ClassPromptedSAM
from .point_sampler import PointSampler

__all__ = ['ClassPromptedSAM', 'PointSampler']
