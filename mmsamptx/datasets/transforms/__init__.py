"""Data transforms, registered in mmseg's ``TRANSFORMS``."""
from .seeded_albu import SeededAlbu

__all__ = ['SeededAlbu']
