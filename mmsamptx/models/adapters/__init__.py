from .attach import ADAPTER_SLOTS, attach_adapters
from .attention_adapter import AttentionAdapter
from .decoder_prompt_tokens import DecoderPromptTokens
from .encoder_prompt_tokens import EncoderPromptTokens
from .parallel_adapter import ParallelAdapter
from .parallel_text_adapter import ParallelTextAdapter

__all__ = ['ADAPTER_SLOTS', 'attach_adapters', 'AttentionAdapter', 'DecoderPromptTokens',
           'EncoderPromptTokens', 'ParallelAdapter', 'ParallelTextAdapter']
