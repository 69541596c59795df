"""Load a trained checkpoint onto a built model: strictly, or partially only when asked, never silently.

The one loader of the API, ``tools/infer.py``, ``tools/test.py`` and ``tools/train.py``:

* a file that is missing, empty, truncated or not a PyTorch checkpoint is a one-line
  :class:`CheckpointError` naming the file (never a pickle or zip traceback);
* the file is read with ``torch.load(weights_only=True)`` through
  :func:`mmsamptx.engine.safe_torch_load` (a checkpoint that asks for code is refused);
* the checkpoint's keys must be exactly the model's (``strict``); otherwise the error
  names the first missing and unexpected keys, the modules they belong to, and the
  config the checkpoint's own meta says it was trained with. ``allow_partial=True``
  loads what fits and logs what did not (a warning, never silence);
* an adapter-only file (:mod:`mmsamptx.apis.adapter_checkpoint`) goes onto the
  official base weights (``init_weights()``), which that module checks by digest.
"""
import os.path as osp
import pickle
import re
import zipfile
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from .errors import InputError

__all__ = ['CheckpointError', 'read_checkpoint', 'state_dict_of', 'check_state_dict',
           'load_trained_checkpoint', 'checkpoint_origin']

#: Entries that are run state, not weights: their absence is not a missing weight.
RUN_STATE_SUFFIXES = ('prompt_sampler_rng_state',)
_TIMESTAMP = re.compile(r'_\d{8}_\d{6}$')


class CheckpointError(InputError):
    """A checkpoint file that cannot be read, or that does not fit the model."""


def _is_url(path: str) -> bool:
    return '://' in str(path)


def read_checkpoint(path: str) -> dict:
    """The checkpoint at ``path`` (a local file or a URL) as a dict, read with ``weights_only=True``.

    Raises :class:`CheckpointError` for a missing, empty, truncated or undecodable file and
    for a file that holds no dict; :class:`mmsamptx.engine.CheckpointSecurityError` for a
    file that needs a global outside the allow-list.
    """
    from mmsamptx.engine import CheckpointSecurityError, safe_torch_load
    path = str(path)
    if _is_url(path):
        from mmengine.runner import CheckpointLoader
        ckpt = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    else:
        local = osp.expanduser(path)
        if not osp.isfile(local):
            raise CheckpointError(f'checkpoint file not found: {path}')
        if osp.getsize(local) == 0:
            raise CheckpointError(f'checkpoint file {path} is empty')
        try:
            ckpt = safe_torch_load(local, map_location='cpu', filename=path)
        except CheckpointSecurityError as e:
            if e.refused_global is not None:
                raise
            # no global was refused: the bytes are not a pickle torch can read at all
            reason = str(e).rsplit('torch: ', 1)[-1]
            raise CheckpointError(f'checkpoint file {path} cannot be read: it is not a PyTorch '
                                  f'checkpoint ({reason})') from None
        except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile,
                UnicodeDecodeError, ValueError, KeyError, AttributeError, ImportError,
                IndexError, TypeError, OSError) as e:
            raise CheckpointError(f'checkpoint file {path} cannot be read: {_why(local, e)}') from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint file {path} holds a {type(ckpt).__name__}, not a '
                              'checkpoint (a dict of tensors, or one with a state_dict)')
    return ckpt


def _why(path: str, error: Exception) -> str:
    """Why torch could not read a file, in words: truncated, not a checkpoint, or torch's reason."""
    text = ' '.join(str(error).split())
    if zipfile.is_zipfile(path) is False and _starts_like_zip(path):
        return 'it is truncated (a zip archive without its end: the download or copy stopped early)'
    if 'central directory' in text or 'zip archive' in text:
        return f'it is truncated or corrupt ({text})'
    if isinstance(error, (pickle.UnpicklingError, EOFError, UnicodeDecodeError)) or \
            'invalid load key' in text:
        return f'it is not a PyTorch checkpoint ({type(error).__name__}: {text})'
    return f'{type(error).__name__}: {text}'


def _starts_like_zip(path: str) -> bool:
    with open(path, 'rb') as f:
        return f.read(4) == b'PK\x03\x04'


def state_dict_of(ckpt: dict, path: str = 'the checkpoint') -> 'OrderedDict[str, torch.Tensor]':
    """The weights of a checkpoint dict (its ``state_dict``, or the dict itself), with the
    ``module.`` prefix of a wrapped model removed (as mmengine's ``revise_keys``)."""
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f'{path} holds no weights (an empty or missing state_dict)')
    bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise CheckpointError(f'{path} is not a model checkpoint: its entry {bad!r} is a '
                              f'{type(state[bad]).__name__}, not a tensor')
    return OrderedDict((re.sub(r'^module\.', '', k), v) for k, v in state.items())


#: Key prefixes of official weight files that are not trained checkpoints of a config.
OFFICIAL_PREFIXES = (
    (('image_encoder.', 'mask_decoder.', 'prompt_encoder.'),
     "an official SAM checkpoint (segment_anything's keys), which a config loads in init_weights() "
     '(model.backbone.checkpoint), not as a trained checkpoint'),
    (('visual.', 'transformer.', 'token_embedding.'),
     'an official CLIP checkpoint (open_clip keys), which the text encoder or guide loads itself'),
)


def checkpoint_origin(ckpt: dict) -> Optional[str]:
    """Which config a checkpoint seems to come from, by the meta mmengine saved with it (or
    which official weight file it is, by its keys)."""
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    state = ckpt.get('state_dict', ckpt)
    if isinstance(state, dict) and state and not meta:
        for prefixes, what in OFFICIAL_PREFIXES:
            if sum(str(k).startswith(prefixes) for k in state) > len(state) // 2:
                return what
    name = meta.get('experiment_name')
    if isinstance(name, str) and name:
        stem = _TIMESTAMP.sub('', name)
        from .model_zoo import _index
        known = _index().get(stem)
        where = f' ({osp.relpath(known[0])})' if known and len(known) == 1 else ''
        return f'from config {stem!r}{where}'
    cfg = meta.get('cfg')
    if isinstance(cfg, str) and cfg:
        types = re.findall(r"type='(\w+)'", cfg)
        parts = [t for t in dict.fromkeys(types) if t.endswith(('Adapter', 'SAM', 'Guide', 'Tokens'))]
        if parts:
            return 'from a config with ' + ', '.join(parts)
    return None


def _modules(keys: Sequence[str], limit: int = 3) -> str:
    """The module paths the keys belong to, block indices folded: 'backbone.blocks.N.adapter'."""
    groups = []
    for k in keys:
        parts = re.sub(r'\.\d+(?=\.|$)', '.N', k).split('.')
        mod = '.'.join(parts[:-2] if len(parts) > 4 else parts[:-1])
        if mod not in groups:
            groups.append(mod)
    more = f' and {len(groups) - limit} more' if len(groups) > limit else ''
    return ', '.join(groups[:limit]) + more


def check_state_dict(model: nn.Module, state: Dict[str, torch.Tensor], path: str,
                     ckpt: Optional[dict] = None, allow_partial: bool = False,
                     config_name: Optional[str] = None) -> Dict[str, List[str]]:
    """Compare a checkpoint's weights with ``model``'s; raise :class:`CheckpointError` unless
    they match (or, with ``allow_partial``, unless a shared key differs in shape).

    Returns ``dict(missing=[...], unexpected=[...])``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(RUN_STATE_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    for k, v in state.items():
        if k in own and tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f'checkpoint {path} does not fit {config_name or "this model"}: {k!r} has shape '
                f'{tuple(v.shape)} in the file and {tuple(own[k].shape)} in the model'
                + _origin_text(ckpt))
    if (missing or unexpected) and not allow_partial:
        parts = []
        if missing:
            parts.append(f'{len(missing)} of the model\'s keys are missing (first: '
                         f'{", ".join(missing[:3])}; in {_modules(missing)})')
        if unexpected:
            parts.append(f'{len(unexpected)} keys are not in the model (first: '
                         f'{", ".join(unexpected[:3])}; in {_modules(unexpected)})')
        raise CheckpointError(
            f'checkpoint {path} does not fit {config_name or "this model"}: ' + '; '.join(parts)
            + _origin_text(ckpt) + '. Load it anyway with --allow-partial (allow_partial=True): '
            'the missing weights then come from init_weights() (the official files)')
    return dict(missing=missing, unexpected=unexpected)


def _origin_text(ckpt: Optional[dict]) -> str:
    origin = checkpoint_origin(ckpt) if ckpt is not None else None
    return f'; it seems to be {origin}' if origin else ''


def _adapter_module():
    """:mod:`mmsamptx.apis.adapter_checkpoint`, when it exists in this installation."""
    try:
        from . import adapter_checkpoint
    except ImportError:
        return None
    return adapter_checkpoint


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP / mmengine wrappers and a test-time-augmentation model."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def load_trained_checkpoint(model: nn.Module, path: str, allow_partial: bool = False,
                            config_name: Optional[str] = None, init_missing: bool = True) -> dict:
    """Load a trained checkpoint (full, or adapter-only) into ``model``.

    Args:
        model: the built model (a DDP / mmengine wrapper is unwrapped).
        path: a full checkpoint (``state_dict`` + ``meta``, as tools/train.py saves) or an
            adapter-only file; an adapter-only file goes onto the official base weights,
            so ``init_weights()`` runs first.
        allow_partial: load a full checkpoint whose keys differ from the model's (with a
            warning naming what did not fit).
        config_name: how messages name the model's config.
        init_missing: with keys missing (``allow_partial``), run ``init_weights()`` first so
            that they hold the official SAM / CLIP weights, not a random initialisation.

    Returns:
        The checkpoint's ``meta`` (empty for an adapter-only file).
    """
    model = _unwrap(model)
    path = str(path)
    adapters = _adapter_module()
    if adapters is not None and not _is_url(path) and osp.isfile(osp.expanduser(path)):
        try:
            is_adapter = adapters.is_adapter_checkpoint(osp.expanduser(path))
        except (OSError, ValueError, RuntimeError):
            is_adapter = False  # not readable as one: the full reader below says why
        if is_adapter:
            model.init_weights()
            try:
                adapters.load_adapter_checkpoint(model, osp.expanduser(path))
            except ValueError as e:
                raise CheckpointError(str(e)) from None
            return {}
    ckpt = read_checkpoint(path)
    state = state_dict_of(ckpt, path)
    report = check_state_dict(model, state, path, ckpt, allow_partial, config_name)
    if report['missing'] and init_missing:
        model.init_weights()  # what the checkpoint lacks comes from the official files
    model.load_state_dict(state, strict=False)
    if report['missing'] or report['unexpected']:
        MMLogger.get_current_instance().warning(
            f'partial load of {path} (allow_partial): {len(report["missing"])} missing keys '
            f'keep their initial weights (in {_modules(report["missing"]) or "none"}), '
            f'{len(report["unexpected"])} unexpected keys ignored '
            f'(in {_modules(report["unexpected"]) or "none"})')
    meta = ckpt.get('meta')
    return meta if isinstance(meta, dict) else {}
