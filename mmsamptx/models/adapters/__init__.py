from .attach import attach_adapters
from .decoder_prompt_tokens import DecoderPromptTokens
from .encoder_prompt_tokens import EncoderPromptTokens
from .parallel_adapter import ParallelAdapter
from .parallel_text_adapter import ParallelTextAdapter

__all__ = ['attach_adapters', 'DecoderPromptTokens', 'EncoderPromptTokens', 'ParallelAdapter',
           'ParallelTextAdapter']
