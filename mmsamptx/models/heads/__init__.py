from .sam_mask_decoder import SAMMaskDecoder
from .sam_promptable_head import SAMPromptableHead
from .sam_prompt_encoder import SAMPromptEncoder

__all__ = ['SAMMaskDecoder', 'SAMPromptEncoder', 'SAMPromptableHead']
