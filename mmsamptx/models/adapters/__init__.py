from .attach import ADAPTER_SLOTS, attach_adapters
from .attention_adapter import AttentionAdapter
from .condition import CLIPCondition
from .decoder_prompt_tokens import DecoderPromptTokens
from .encoder_prompt_tokens import EncoderPromptTokens
from .lora import LoRAQKV, lora_qkv_param_count
from .parallel_adapter import ParallelAdapter
from .parallel_text_adapter import ParallelTextAdapter
from .semantic_adapter import SemanticAdapter

__all__ = ['ADAPTER_SLOTS', 'attach_adapters', 'AttentionAdapter', 'CLIPCondition',
           'DecoderPromptTokens', 'EncoderPromptTokens', 'LoRAQKV', 'lora_qkv_param_count',
           'ParallelAdapter', 'ParallelTextAdapter',
           'SemanticAdapter']
