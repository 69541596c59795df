"""The embedded default job of ``make demo``: a generated task where text resolves point ambiguity."""
from .ambiguous_shapes import AMBIGUOUS_CLASSES, make_ambiguous_shapes
from .colour_shapes import COLOUR_CLASSES, make_colour_shapes
from .microscopy import make_microscopy

__all__ = ['AMBIGUOUS_CLASSES', 'COLOUR_CLASSES', 'make_ambiguous_shapes', 'make_colour_shapes',
           'make_microscopy']
