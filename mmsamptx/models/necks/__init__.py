from .sam_neck import SAMNeck

__all__ = ['SAMNeck']
