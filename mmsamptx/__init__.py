"""mmsamptx: text-guided, parameter-efficient Segment Anything for OpenMMLab.

Importing the package registers every component in mmseg's registries (and
the safe-loading allow-list and atomic checkpoint hook of ``mmsamptx.engine``),
so a config only needs ``custom_imports=dict(imports=['mmsamptx'])``.
"""
from . import datasets, engine, evaluation, models  # noqa: F401  (registration)
from .version import __version__

__all__ = ['__version__']
