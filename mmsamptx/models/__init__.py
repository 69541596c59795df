from . import (adapters, backbones, heads, losses, necks,  # noqa: F401
               segmentors, text_encoders)
from . import guides  # noqa: F401
