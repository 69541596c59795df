"""Attach adapters beside the MLP of chosen SAM encoder blocks, from a config (peft-style)."""
import copy
from typing import List, Optional, Sequence

import torch.nn as nn
from mmseg.registry import MODELS


def attach_adapters(encoder: nn.Module, adapter_cfg: dict) -> List[int]:
    """Build one adapter per chosen block and put it in the block's ``adapter`` slot.

    Args:
        encoder: a :class:`SAMImageEncoder` (anything with ``blocks`` of
            :class:`SAMBlock` and ``embed_dims``).
        adapter_cfg: ``dict(type=..., blocks=None | [indices], **adapter_args)``;
            ``blocks=None`` means every block; negative indices count from the
            end. ``embed_dims`` is filled in from the encoder.

    Returns:
        The sorted block indices that received an adapter.
    """
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
        if encoder.blocks[i].adapter is not None:
            raise ValueError(f'block {i} already has an adapter')
        encoder.blocks[i].adapter = MODELS.build(cfg)
    return indices
