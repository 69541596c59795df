from . import (adapters, backbones, heads, necks, segmentors,  # noqa: F401
               text_encoders)
