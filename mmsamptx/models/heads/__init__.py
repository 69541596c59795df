from .evf_prompt_projector import EVFPromptProjector
from .evf_visual_sam import EVFVisualSAM
from .sam_mask_decoder import SAMMaskDecoder
from .sam_promptable_head import SAMPromptableHead
from .sam_prompt_encoder import SAMPromptEncoder
from .text_cross_attention import TextCrossAttention
from .text_prompt_token import TextPromptToken

__all__ = ['EVFPromptProjector', 'EVFVisualSAM', 'SAMMaskDecoder', 'SAMPromptEncoder',
           'SAMPromptableHead', 'TextCrossAttention', 'TextPromptToken']
