"""Loading BEiT-3 weights into :class:`BEiT3`: the one place of BEiT-3 key mapping.

Our BEiT-3 keeps torchscale's parameter names, so a checkpoint loads by
stripping a prefix: ``beit3.`` for the BEiT-3 init files
(``beit3_large_patch16_224.pth``: ``{'model': state_dict}``) and
``mm_extractor.beit3.`` for EVF-SAM's files. The only renaming is peft's: with
LoRA injected, a targeted Linear's ``weight`` lives at ``base_layer.weight``.

Loading is exact: a key the module lacks, a module key the file lacks or a
shape mismatch raises, naming the first bad key (and both shapes). Tensors are
cast to the module's dtype one by one (EVF-SAM's files are fp16).
"""
import logging
import os.path as osp
from typing import Dict, Mapping, Optional

import torch
from mmengine.logging import print_log
from torch import nn

from ...utils.download import hub_path, resolve_file  # noqa: F401  (hub_path: re-exported)

BEIT3_URL_BASE = 'https://github.com/addf400/files/releases/download/beit3'
BEIT3_CHECKPOINT_URLS = {
    'large': f'{BEIT3_URL_BASE}/beit3_large_patch16_224.pth',
    'base': f'{BEIT3_URL_BASE}/beit3_base_patch16_224.pth',
}
_URL_BY_FILE = {osp.basename(url): url for url in BEIT3_CHECKPOINT_URLS.values()}
INIT_FILE_PREFIX = 'beit3.'


def read_beit3_init_file(checkpoint: str, prefix: str = INIT_FILE_PREFIX) -> Dict[str, torch.Tensor]:
    """The BEiT-3 part of a BEiT-3 init file, with ``prefix`` (``beit3.``) stripped.

    The file is ``{'model': state_dict}`` (a bare state dict is accepted too),
    read with ``weights_only=True``. Keys outside ``prefix`` (the pre-training
    heads) are not part of the encoder; they are ignored and listed in the log.
    """
    path = resolve_file(checkpoint, 'BEiT-3 checkpoint', _URL_BY_FILE)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise RuntimeError(f'could not read BEiT-3 checkpoint {path!r}: {type(e).__name__}: {e}') from e
    if isinstance(state, dict) and isinstance(state.get('model'), dict):
        state = state['model']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path!r} is not a BEiT-3 checkpoint (a mapping of names to tensors, '
                         "or {'model': ...})")
    part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not part:
        first = ', '.join(list(state)[:3])
        raise ValueError(f'{path!r} has no keys under {prefix!r} (first keys: {first}); '
                         'is it a BEiT-3 checkpoint?')
    ignored = [k for k in state if not k.startswith(prefix)]
    if ignored:
        print_log(f'BEiT-3 checkpoint {path}: ignored {len(ignored)} key(s) outside '
                  f'{prefix!r} (pre-training heads): {", ".join(ignored[:8])}',
                  logger='current', level=logging.INFO)
    return part


def _own_key(key: str, own: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The module's key for a torchscale key (peft moves a wrapped Linear's tensors to base_layer)."""
    if key in own:
        return key
    head, _, leaf = key.rpartition('.')
    wrapped = f'{head}.base_layer.{leaf}' if head else f'base_layer.{leaf}'
    return wrapped if wrapped in own else None


def is_adapter_key(key: str) -> bool:
    """Keys that are not BEiT-3's own (peft's LoRA tensors); a checkpoint need not hold them."""
    return '.lora_' in key or key.startswith('lora_')


def load_beit3_weights(module: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                       prefix: str = '') -> None:
    """Copy torchscale-named BEiT-3 tensors into ``module`` exactly.

    Args:
        module: a :class:`BEiT3` (with or without LoRA injected).
        state: tensors under torchscale's names (prefix already stripped).
        source: the file's name, for the messages.
        prefix: the prefix the keys had in the file (``'beit3.'``), for the messages.

    Raises:
        ValueError: a key the module lacks, a shape mismatch (the key and both
            shapes) or a module key the file lacks, the first of each.
    """
    own = module.state_dict()
    mapped = {}
    for key, value in state.items():
        target = _own_key(key, own)
        if target is None:
            raise ValueError(f'{source}: key {prefix + key!r} has no counterpart in '
                             f'{type(module).__name__}; is the file of another model?')
        if own[target].shape != value.shape:
            raise ValueError(
                f'{source}: key {prefix + key!r} has shape {tuple(value.shape)} in the file but '
                f'{tuple(own[target].shape)} in {type(module).__name__}; check `arch`, '
                '`img_size`, `patch_size` and `vocab_size`.')
        mapped[target] = value.to(own[target].dtype)
    missing = [k for k in own if k not in mapped and not is_adapter_key(k)]
    if missing:
        raise ValueError(f'{source} lacks {len(missing)} key(s) of {type(module).__name__}, '
                         f'first {prefix + missing[0].replace(".base_layer.", ".")!r}; check `arch`.')
    module.load_state_dict(mapped, strict=False)
