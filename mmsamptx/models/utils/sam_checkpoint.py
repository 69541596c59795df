"""Loading the official SAM checkpoints into this library's modules: the one place of key mapping.

An official file (``sam_vit_b_01ec64.pth`` ...) is a single state dict whose keys
start with ``image_encoder.``, ``prompt_encoder.`` or ``mask_decoder.``. Each of
our components keeps SAM's parameter names below one of these prefixes, so a
component loads its part by stripping the prefix; nothing else is renamed.
"""
import os.path as osp
from typing import Callable, Dict, Iterable, Optional

import torch
import torch.nn as nn

from ...utils.download import resolve_file

SAM_CHECKPOINT_URLS = {
    'vit_b': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth',
    'vit_l': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth',
    'vit_h': 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth',
}
_URL_BY_FILE = {osp.basename(url): url for url in SAM_CHECKPOINT_URLS.values()}


def resolve_sam_checkpoint(checkpoint: str) -> str:
    """Turn a local path or an official URL into a local file path.

    A URL is downloaded once into the torch hub cache. Offline, or for a local
    path that does not exist, the error names the file, the official URL and
    where to put the file.
    """
    return resolve_file(checkpoint, 'SAM checkpoint', _URL_BY_FILE)


def load_sam_state_dict(checkpoint: str) -> Dict[str, torch.Tensor]:
    """Read an official SAM file (or a ``{'state_dict': ...}`` wrapper) with ``weights_only=True``."""
    path = resolve_sam_checkpoint(checkpoint)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise RuntimeError(f'Could not read SAM checkpoint {path!r}: {type(e).__name__}: {e}') from e
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{path!r} is not a SAM state dict (a mapping of names to tensors)')
    return state


def load_sam_part(module: nn.Module, checkpoint: str, prefix: str,
                  exclude: Iterable[str] = (),
                  is_extra: Optional[Callable[[str], bool]] = None,
                  state_dict: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Load the keys under ``prefix`` of a SAM checkpoint into ``module``, exactly.

    Args:
        module: the component whose own keys equal the checkpoint's after the prefix.
        checkpoint: a path or official URL (see :func:`resolve_sam_checkpoint`).
        prefix: e.g. ``'image_encoder.'``.
        exclude: sub-prefixes (after ``prefix``) that belong to another component,
            e.g. ``('neck.',)`` for the encoder trunk.
        is_extra: names the module's keys that are not part of SAM (adapters,
            prompt tokens); they may be absent from the checkpoint.
        state_dict: an already loaded state dict (then ``checkpoint`` only names it).

    Raises:
        ValueError: a key whose shape differs (naming the key and both shapes),
            a checkpoint key the module does not have, or a module key the
            checkpoint lacks (the first of each, in order).
    """
    state = load_sam_state_dict(checkpoint) if state_dict is None else state_dict
    exclude = tuple(exclude)
    part = {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix) and not k[len(prefix):].startswith(exclude)}
    if not part:
        first = ', '.join(list(state)[:3])
        raise ValueError(f'{checkpoint!r} has no keys under {prefix!r} (first keys: {first}); '
                         'is it an official SAM checkpoint?')
    own = module.state_dict()
    for key, value in part.items():
        if key not in own:
            raise ValueError(
                f'{checkpoint!r}: key {prefix + key!r} has no counterpart in {type(module).__name__}; '
                'the checkpoint is probably of another SAM architecture (check `arch`).')
        if own[key].shape != value.shape:
            raise ValueError(
                f'{checkpoint!r}: key {prefix + key!r} has shape {tuple(value.shape)} in the checkpoint '
                f'but {tuple(own[key].shape)} in {type(module).__name__}; the checkpoint is probably '
                'of another SAM architecture (check `arch`).')
    extra = is_extra or (lambda k: False)
    missing = [k for k in own if k not in part and not extra(k)]
    if missing:
        raise ValueError(f'{checkpoint!r} lacks {len(missing)} key(s) of {type(module).__name__}, '
                         f'first {prefix + missing[0]!r}; check `arch`.')
    module.load_state_dict(part, strict=False)


def sam_checkpoint_of(module) -> Optional[str]:
    """The SAM checkpoint a module loads in ``init_weights``: its ``checkpoint`` argument, or the
    ``checkpoint`` of a ``Pretrained`` ``init_cfg`` (which wins); None for none."""
    init_cfg = getattr(module, 'init_cfg', None)
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        return init_cfg['checkpoint']
    return getattr(module, 'checkpoint', None)
