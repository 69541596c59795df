"""Data transforms, registered in mmseg's ``TRANSFORMS``."""
from .load_referring_masks import LoadReferringMasks
from .pack_referring_inputs import PackReferringInputs
from .seeded_albu import SeededAlbu

__all__ = ['LoadReferringMasks', 'PackReferringInputs', 'SeededAlbu']
