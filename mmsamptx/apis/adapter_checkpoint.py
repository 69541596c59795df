"""Adapter-only checkpoints: the trained tensors of a model, its config, and a digest of the base weights.

A full checkpoint of a parameter-efficient model repeats the frozen SAM (and
CLIP) weights that every user already has as official files. An adapter-only
file keeps, like peft's ``save_pretrained``, only what training changed:

* the tensors of the parameters that train in the model the config builds
  (``requires_grad`` after building: adapters, prompt tokens, the mask decoder
  where it is fine-tuned, CLIP's attention in CLIP-Guided SAM). Nothing is
  listed by hand: the config's freezing decides;
* the config text;
* ``base_digest``: a sha256 over every other state-dict tensor of the model
  (:func:`base_weights_digest`), i.e. the base weights these tensors were
  trained on top of.

The file is a safetensors file (no pickle; ``safetensors.safe_open`` reads it)
whose string metadata holds ``format='mmsamptx-adapters'``, ``format_version``,
``config``, ``base_digest``, ``base_tensors`` (how many tensors the digest
covers) and ``source`` (the full checkpoint's file name).

Loading one (:func:`load_adapter_checkpoint`) onto a model whose base weights
came from ``init_weights()`` (the official files) checks that the file holds
exactly the model's trained tensors with their shapes, and that the model's
base weights have the digest the file names; only then are the tensors copied
in. The result equals the model loaded from the full checkpoint.
"""
import hashlib
import json
import os
import os.path as osp
import struct
import weakref
from typing import Dict, Iterable, List, Optional, Tuple

import torch
import torch.nn as nn

FORMAT = 'mmsamptx-adapters'
FORMAT_VERSION = '1'
#: State-dict entries that are run state, not weights (the prompt sampler's RNG).
RUN_STATE_KEYS = ('prompt_sampler_rng_state',)

__all__ = ['FORMAT', 'is_adapter_checkpoint', 'load_adapter_checkpoint', 'export_adapters',
           'trained_keys', 'base_weights_digest', 'read_adapter_checkpoint']


# ------------------------------------------------------------------ keys and digest
def trained_keys(model: nn.Module) -> List[str]:
    """State-dict names of the parameters that train in ``model`` (``requires_grad``), sorted."""
    return sorted(n for n, p in model.named_parameters() if p.requires_grad)


def _is_run_state(key: str) -> bool:
    return key.rsplit('.', 1)[-1] in RUN_STATE_KEYS


def _base_items(state: Dict[str, torch.Tensor], trained: Iterable[str]
                ) -> List[Tuple[str, torch.Tensor]]:
    trained = set(trained)
    return sorted((k, v) for k, v in state.items()
                  if k not in trained and not _is_run_state(k) and isinstance(v, torch.Tensor))


def _digest_items(items: List[Tuple[str, torch.Tensor]]) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of each tensor, in name order."""
    h = hashlib.sha256()
    for name, t in items:
        t = t.detach().to('cpu').contiguous()
        h.update(f'{name}\0{str(t.dtype).replace("torch.", "")}\0'
                 f'{",".join(map(str, t.shape))}\0'.encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())  # no copy: a buffer view
    return h.hexdigest()


# One digest per model object, reused while no base tensor changed (data pointer and
# in-place version counter of every tensor form the key), e.g. when several adapter
# files are loaded in turn onto the same base model.
_DIGEST_MEMO: 'weakref.WeakKeyDictionary[nn.Module, Tuple[tuple, str]]' = weakref.WeakKeyDictionary()


def base_weights_digest(model: nn.Module, trained: Optional[Iterable[str]] = None) -> str:
    """sha256 of ``model``'s base weights: every state-dict tensor except the trained ones.

    Tensors are taken in name order; each contributes its name, dtype, shape and
    raw bytes (the run state ``prompt_sampler_rng_state`` is not a weight and is
    left out). Memoised per model until one of those tensors changes.
    """
    trained = trained_keys(model) if trained is None else list(trained)
    items = _base_items(model.state_dict(), trained)
    key = tuple((k, v.data_ptr(), v._version, v.dtype, tuple(v.shape)) for k, v in items)
    memo = _DIGEST_MEMO.get(model)
    if memo is not None and memo[0] == key:
        return memo[1]
    digest = _digest_items(items)
    _DIGEST_MEMO[model] = (key, digest)
    return digest


# ------------------------------------------------------------------------- reading
def _read_header(path: str) -> Optional[dict]:
    """The JSON header of a safetensors file, or None for anything else."""
    try:
        with open(path, 'rb') as f:
            head = f.read(8)
            if len(head) != 8:
                return None
            (n,) = struct.unpack('<Q', head)
            if n > 100 * 2**20 or n > osp.getsize(path) - 8:
                return None
            return json.loads(f.read(n))
    except (OSError, ValueError):
        return None


def is_adapter_checkpoint(path: str) -> bool:
    """Whether ``path`` is an adapter-only checkpoint of this format (reads only its header)."""
    header = _read_header(os.fspath(path)) if osp.isfile(os.fspath(path)) else None
    return isinstance(header, dict) and \
        (header.get('__metadata__') or {}).get('format') == FORMAT


def read_adapter_checkpoint(path: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """The tensors and metadata of an adapter-only file, checked for the format.

    Raises:
        ValueError: one line naming the file: missing, not this format, torn.
    """
    path = os.fspath(path)
    if not osp.isfile(path):
        raise ValueError(f'adapter checkpoint not found: {path}')
    if not is_adapter_checkpoint(path):
        raise ValueError(f'{path} is not an mmsamptx adapter-only checkpoint (a safetensors file '
                         f"with metadata format={FORMAT!r}; tools/export_adapters.py writes one)")
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f'{path}: unreadable adapter checkpoint ({" ".join(str(e).split())})') from None
    version = meta.get('format_version')
    if version != FORMAT_VERSION:
        raise ValueError(f'{path}: adapter checkpoint format_version {version!r}, this mmsamptx '
                         f'reads {FORMAT_VERSION!r}')
    if 'base_digest' not in meta:
        raise ValueError(f'{path}: adapter checkpoint without base_digest metadata')
    return tensors, meta


def _config_hint(meta: Dict[str, str]) -> str:
    name = meta.get('config_name')
    return f' (exported from config {name})' if name else ''


def load_adapter_checkpoint(model: nn.Module, path: str) -> None:
    """Load an adapter-only file onto ``model``, whose base weights came from ``init_weights()``.

    ``model`` must be built from its config as is (its ``requires_grad`` flags
    say which tensors train). The file must hold exactly those tensors, with
    their shapes, and name the digest of the model's other weights.

    Raises:
        ValueError: one line naming the file and the key or digest at fault.
    """
    path = os.fspath(path)
    tensors, meta = read_adapter_checkpoint(path)
    expected = trained_keys(model)
    if not expected and tensors:
        raise ValueError(f'{path}: this model trains no parameter (was requires_grad turned off '
                         'before loading?), but the file holds '
                         f'{len(tensors)} trained tensor(s), first {sorted(tensors)[0]!r}')
    missing = [k for k in expected if k not in tensors]
    if missing:
        raise ValueError(f'{path} lacks {len(missing)} of the {len(expected)} tensors this model '
                         f'trains, first {missing[0]!r}{_config_hint(meta)}')
    own = model.state_dict()
    extra = sorted(k for k in tensors if k not in expected)
    if extra:
        what = 'a frozen weight of this model' if extra[0] in own else 'not a key of this model'
        raise ValueError(f'{path} holds {len(extra)} tensor(s) this model does not train, first '
                         f'{extra[0]!r} ({what}){_config_hint(meta)}')
    for k in expected:
        if tuple(tensors[k].shape) != tuple(own[k].shape):
            raise ValueError(f'{path}: tensor {k!r} has shape {tuple(tensors[k].shape)} in the file '
                             f'but {tuple(own[k].shape)} in this model{_config_hint(meta)}')
    found = base_weights_digest(model, expected)
    if found != meta['base_digest']:
        raise ValueError(f'{path} was trained on other base weights: it needs base weights with '
                         f'sha256 {meta["base_digest"]}, this model has {found} (load the official '
                         'SAM/CLIP files the config names with init_weights() first)')
    result = model.load_state_dict(tensors, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # checked above


# ------------------------------------------------------------------------- export
def _load_full_checkpoint(path: str) -> dict:
    """A full checkpoint's dict (``weights_only=True``), any read failure as one-line ValueError."""
    if osp.isfile(path) and is_adapter_checkpoint(path):
        raise ValueError(f'{path} is already an adapter-only checkpoint')
    from .checkpoint import read_checkpoint  # CheckpointError is a ValueError
    return read_checkpoint(path)


def _resolve_config(config, ckpt: dict, path: str):
    """(Config, text, name) from ``config`` (a path, model-zoo name or Config) or the
    checkpoint's ``meta.cfg``."""
    from mmengine.config import Config
    if config is None:
        text = (ckpt.get('meta') or {}).get('cfg')
        if not isinstance(text, str):
            raise ValueError(f'{path} holds no config (meta.cfg, written by tools/train.py): '
                             'pass the config it was trained with (--config)')
        return Config.fromstring(text, '.py'), text, osp.basename(path)
    if isinstance(config, Config):
        return config, config.pretty_text, osp.basename(config.filename or 'config')
    from .model_zoo import resolve_config  # a file or a model-zoo name; InputError is a ValueError
    config = resolve_config(os.fspath(config))
    cfg = Config.fromfile(config)
    return cfg, cfg.pretty_text, osp.basename(config)


def build_bare_model(cfg) -> nn.Module:
    """The model of ``cfg`` as the config builds it (no weights read)."""
    import mmsamptx  # noqa: F401  (registration)
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    return MODELS.build(cfg.model)


def export_adapters(checkpoint: str, out: str, config=None) -> dict:
    """Write the adapter-only file of a full checkpoint; returns what was written.

    Args:
        checkpoint: a full checkpoint (``tools/train.py``'s, or a bare state dict).
        out: the ``.safetensors`` file to write (atomically).
        config: the config it was trained with (path, model-zoo name or ``Config``);
            default the checkpoint's own ``meta.cfg``.

    Returns:
        ``dict(out, full_bytes, adapter_bytes, trained_tensors, trained_params,
        base_tensors, base_digest)``.

    Raises:
        ValueError: one line naming the file / key at fault.
    """
    checkpoint, out = os.fspath(checkpoint), os.fspath(out)
    ckpt = _load_full_checkpoint(checkpoint)
    cfg, text, name = _resolve_config(config, ckpt, checkpoint)
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f'{checkpoint} holds no state dict of tensors')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}  # a DDP-wrapped save
    model = build_bare_model(cfg)
    trained = trained_keys(model)
    own = model.state_dict()
    needed = [k for k in own if not _is_run_state(k)]
    missing = [k for k in needed if k not in state]
    if missing:
        raise ValueError(f'{checkpoint} lacks {len(missing)} key(s) of the model of {name}, '
                         f'first {missing[0]!r}: is it a checkpoint of this config?')
    extra = [k for k in state if k not in own and not _is_run_state(k)]
    if extra:
        raise ValueError(f'{checkpoint} has {len(extra)} key(s) the model of {name} lacks, '
                         f'first {extra[0]!r}: is it a checkpoint of this config?')
    for k in needed:
        if tuple(state[k].shape) != tuple(own[k].shape):
            raise ValueError(f'{checkpoint}: key {k!r} has shape {tuple(state[k].shape)}, the model '
                             f'of {name} {tuple(own[k].shape)}')
    base = _base_items(state, trained)
    digest = _digest_items(base)
    del model, own
    # clone: safetensors refuses tensors that share storage, and a slice would save its base
    tensors = {k: state[k].detach().clone().contiguous() for k in trained}
    meta = dict(format=FORMAT, format_version=FORMAT_VERSION, config=text, config_name=name,
                base_digest=digest, base_tensors=str(len(base)), source=osp.basename(checkpoint))
    from safetensors.torch import save
    data = save(tensors, metadata=meta)
    from mmsamptx.utils import atomic_write
    with atomic_write(out, 'wb') as f:
        f.write(data)
    return dict(out=out, full_bytes=osp.getsize(checkpoint), adapter_bytes=len(data),
                trained_tensors=len(tensors), trained_params=sum(t.numel() for t in tensors.values()),
                base_tensors=len(base), base_digest=digest)
