from .layer_norm_2d import LayerNorm2d
from .param_report import parameter_report, format_parameter_report
from .rel_pos_attention import (RelPosAttention, decomposed_rel_pos_bias, get_rel_pos,
                                key_position_one_hot, rel_pos_terms, sdpa_with_rel_pos)
from .sam_block import MLPBlock, SAMBlock
from .sam_checkpoint import (SAM_CHECKPOINT_URLS, load_sam_part, load_sam_state_dict,
                             resolve_sam_checkpoint, sam_checkpoint_of)
from .window import window_partition, window_unpartition

__all__ = [
    'LayerNorm2d', 'RelPosAttention', 'decomposed_rel_pos_bias', 'get_rel_pos', 'rel_pos_terms',
    'key_position_one_hot', 'sdpa_with_rel_pos', 'MLPBlock', 'SAMBlock', 'SAM_CHECKPOINT_URLS',
    'load_sam_part', 'load_sam_state_dict', 'resolve_sam_checkpoint', 'sam_checkpoint_of',
    'window_partition', 'window_unpartition', 'parameter_report', 'format_parameter_report'
]
