"""Attach adapters to one of the two adapter slots of chosen SAM encoder blocks (peft-style)."""
import copy
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
from mmseg.registry import MODELS

#: the adapter slots of a :class:`SAMBlock`: ``'adapter'`` beside the MLP (called on the
#: normalised post-attention tokens, output added to the MLP's) and ``'attn_adapter'``
#: beside attention (called on the attention output a, as ``a = a + attn_adapter(a)``);
#: ``'attn.qkv'`` is the attention's fused q/k/v projection itself, wrapped as peft wraps a
#: target layer: the adapter's ``wrap(layer)`` adopts the layer's weights (same state-dict
#: keys) and takes its place (LoRA, :class:`LoRAQKV`).
ADAPTER_SLOTS = ('adapter', 'attn_adapter', 'attn.qkv')
#: the slots whose adapter wraps an existing layer instead of filling an empty place.
WRAPPING_SLOTS = ('attn.qkv',)


def _slot_taken(block: nn.Module, slot: str) -> bool:
    """Whether ``slot`` of ``block`` already holds an adapter."""
    if slot == 'attn.qkv':
        return hasattr(block.attn.qkv, 'wrap')  # the projection is always there; taken once wrapped
    return getattr(block, slot) is not None


def resolve_blocks(blocks: Optional[Sequence[int]], depth: int) -> List[int]:
    """The sorted block indices of ``blocks`` (None: all; negative indices count from the end)."""
    if blocks is None:
        return list(range(depth))
    bad = [i for i in blocks if not -depth <= int(i) < depth]
    if bad:
        raise ValueError(f'adapter blocks {bad} out of range for an encoder of {depth} blocks '
                         f'(valid: 0..{depth - 1} or negative)')
    return sorted({int(i) % depth for i in blocks})


def attach_adapters(encoder: nn.Module, adapter_cfg: Union[dict, Sequence[dict]],
                    slot: str = 'adapter') -> List[int]:
    """Build one adapter per chosen block and put it in the block's ``slot``.

    The slot is the target module in peft's sense; it is an argument, not a
    config key, so :class:`SAMImageEncoder` names it by the config it reads
    (``adapter_cfg`` -> ``'adapter'``, ``attn_adapter_cfg`` -> ``'attn_adapter'``).

    A list of configs puts different adapter types in different blocks of the
    same slot, each entry with its own ``blocks``; the entries must not share
    a block. CLIP-Guided SAM's layout (semantic adapters in the last S = 4
    blocks, the plain MLP-side adapter in the others) reads::

        [dict(type='ParallelAdapter', blocks=list(range(0, 8))),
         dict(type='SemanticAdapter', blocks=list(range(8, 12)))]

    Args:
        encoder: a :class:`SAMImageEncoder` (anything with ``blocks`` of
            :class:`SAMBlock` and ``embed_dims``).
        adapter_cfg: ``dict(type=..., blocks=None | [indices], **adapter_args)``
            or a list of such dicts; ``blocks=None`` means every block;
            negative indices count from the end. ``embed_dims`` is filled in
            from the encoder.
        slot: one of :data:`ADAPTER_SLOTS`; an adapter type with a ``wrap``
            method (:class:`LoRAQKV`) goes in a slot of :data:`WRAPPING_SLOTS`,
            any other in one of the other slots.

    Returns:
        The sorted block indices that received an adapter.
    """
    if slot not in ADAPTER_SLOTS:
        raise ValueError(f'unknown adapter slot {slot!r}; valid: {ADAPTER_SLOTS}')
    entries = [adapter_cfg] if isinstance(adapter_cfg, dict) else list(adapter_cfg)
    if not entries or not all(isinstance(c, dict) for c in entries):
        raise ValueError(f'an adapter config is a dict or a non-empty list of dicts, got {adapter_cfg!r}')
    depth = len(encoder.blocks)
    # Every entry is checked before any adapter is built, so a bad list attaches nothing.
    owner: Dict[int, str] = {}
    plan = []
    for cfg in entries:
        cfg = copy.deepcopy(cfg)
        indices = resolve_blocks(cfg.pop('blocks', None), depth)
        name = cfg.get('type')
        wraps = hasattr(MODELS.get(name) if isinstance(name, str) else name, 'wrap')
        if wraps != (slot in WRAPPING_SLOTS):
            raise ValueError(f'adapter type {name!r} cannot go in slot {slot!r}: ' + (
                f'it wraps a layer, so it goes in one of {WRAPPING_SLOTS}' if wraps else
                f'slot {slot!r} wraps a layer and needs an adapter with a wrap() method'))
        for i in indices:
            if i in owner:
                raise ValueError(f'block {i} is given two adapters for slot {slot!r}: {owner[i]!r} and '
                                 f'{name!r}; the entries of an adapter config list must not share blocks')
            if _slot_taken(encoder.blocks[i], slot):
                raise ValueError(f'block {i} already has an adapter in slot {slot!r}')
            owner[i] = name
        cfg.setdefault('embed_dims', encoder.embed_dims)
        plan.append((cfg, indices))
    for cfg, indices in plan:
        for i in indices:
            if slot == 'attn.qkv':
                attn = encoder.blocks[i].attn
                attn.qkv = MODELS.build(cfg).wrap(attn.qkv)
            else:
                setattr(encoder.blocks[i], slot, MODELS.build(cfg))
    return sorted(owner)
