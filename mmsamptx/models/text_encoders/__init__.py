"""Text encoders that turn class names into embeddings for text-guided SAM."""
from .open_clip_text_encoder import (DEFAULT_TEMPLATES, OPENAI_IMAGENET_PROMPTS,
                                     SAMPTX_TEXT_ENCODER, TINY_MODEL_NAME,
                                     OpenCLIPTextEncoder)
from .beit3 import BEIT3_ARCHS, BEiT3  # EVF-SAM's fusion encoder
from .beit3_tokenizer import BEiT3Tokenizer

__all__ = [
    'OpenCLIPTextEncoder', 'DEFAULT_TEMPLATES', 'OPENAI_IMAGENET_PROMPTS',
    'SAMPTX_TEXT_ENCODER', 'TINY_MODEL_NAME'
]
__all__ += ['BEiT3', 'BEIT3_ARCHS', 'BEiT3Tokenizer']
