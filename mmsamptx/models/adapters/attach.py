"""Attach adapters to one of the two adapter slots of chosen SAM encoder blocks (peft-style)."""
import copy
from typing import List, Optional, Sequence

import torch.nn as nn
from mmseg.registry import MODELS

#: the adapter slots of a :class:`SAMBlock`: ``'adapter'`` beside the MLP (called on the
#: normalised post-attention tokens, output added to the MLP's) and ``'attn_adapter'``
#: beside attention (called on the attention output a, as ``a = a + attn_adapter(a)``).
ADAPTER_SLOTS = ('adapter', 'attn_adapter')


def attach_adapters(encoder: nn.Module, adapter_cfg: dict, slot: str = 'adapter') -> List[int]:
    """Build one adapter per chosen block and put it in the block's ``slot``.

    The slot is the target module in peft's sense; it is an argument, not a
    config key, so :class:`SAMImageEncoder` names it by the config it reads
    (``adapter_cfg`` -> ``'adapter'``, ``attn_adapter_cfg`` -> ``'attn_adapter'``).

    Args:
        encoder: a :class:`SAMImageEncoder` (anything with ``blocks`` of
            :class:`SAMBlock` and ``embed_dims``).
        adapter_cfg: ``dict(type=..., blocks=None | [indices], **adapter_args)``;
            ``blocks=None`` means every block; negative indices count from the
            end. ``embed_dims`` is filled in from the encoder.
        slot: one of :data:`ADAPTER_SLOTS`.

    Returns:
        The sorted block indices that received an adapter.
    """
    if slot not in ADAPTER_SLOTS:
        raise ValueError(f'unknown adapter slot {slot!r}; valid: {ADAPTER_SLOTS}')
    cfg = copy.deepcopy(adapter_cfg)
    blocks: Optional[Sequence[int]] = cfg.pop('blocks', None)
    depth = len(encoder.blocks)
    if blocks is None:
        indices = list(range(depth))
    else:
        bad = [i for i in blocks if not -depth <= int(i) < depth]
        if bad:
            raise ValueError(f'adapter blocks {bad} out of range for an encoder of {depth} blocks '
                             f'(valid: 0..{depth - 1} or negative)')
        indices = sorted({int(i) % depth for i in blocks})
    cfg.setdefault('embed_dims', encoder.embed_dims)
    for i in indices:
        if getattr(encoder.blocks[i], slot) is not None:
            raise ValueError(f'block {i} already has an adapter in slot {slot!r}')
        setattr(encoder.blocks[i], slot, MODELS.build(cfg))
    return indices
