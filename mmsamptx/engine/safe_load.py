"""Load mmengine checkpoints with ``torch.load(..., weights_only=True)``, never more.

Since torch 2.6 ``torch.load`` defaults to ``weights_only=True``, and mmengine
0.10.7's resume then fails with ``Unsupported global: GLOBAL
mmengine.logging.history_buffer.HistoryBuffer``: a training checkpoint holds,
beside tensors, the message hub's history buffers (numpy arrays) and a few
numpy scalars. :func:`register_safe_globals` allow-lists exactly the globals
such a checkpoint needs (found by saving real checkpoints of this project's
runs and loading them until they load), see :data:`SAFE_GLOBALS`:

* ``mmengine.logging.history_buffer.HistoryBuffer``;
* ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``
  and ``numpy._core.multiarray.scalar`` (arrays and scalars in the message
  hub), plus the concrete numpy 2 dtype classes those arrays and scalars use
  (``numpy.dtypes.Float64DType`` for history values and ``eta``,
  ``Int64DType`` for history counts, ``Float32DType`` for metric values such
  as ``best_score``): the unpickler only ``BUILD``\\ s instances of
  allow-listed types, and ``numpy.dtype('f8')`` is a ``Float64DType``;
* ``builtins.getattr`` -- but NOT the real ``getattr``: ``HistoryBuffer``
  pickles its ``statistics_methods`` as ``getattr(HistoryBuffer, 'mean')``
  and friends, and the real ``getattr`` together with ``REDUCE`` would be
  arbitrary code execution. What is allow-listed under that name is
  :func:`_history_buffer_getattr`, which returns only
  ``HistoryBuffer.{min,max,current,mean}`` and refuses everything else.

It also replaces mmengine's loader for local paths (the ``''`` scheme of
``mmengine.runner.CheckpointLoader``) by :func:`load_from_local_safe`, which
calls ``torch.load(..., weights_only=True)`` explicitly and, when torch
refuses a global, re-raises with a message that names that global and says
that mmsamptx does not unpickle arbitrary code. No code path of mmsamptx passes
``weights_only=False``.

Both steps are idempotent. The tools call :func:`register_safe_globals`
before building the runner; importing :mod:`mmsamptx.engine` calls it too, so
``custom_imports=dict(imports=['mmsamptx', 'mmsamptx.engine'])`` is enough
for other entry points.
"""
import os.path as osp
import pickle
import re
import threading

import numpy as np
import torch

__all__ = [
    'SAFE_GLOBALS', 'SAFE_GLOBAL_NAMES', 'CheckpointSecurityError',
    'register_safe_globals', 'load_from_local_safe', 'safe_torch_load'
]

_LOCK = threading.Lock()
_REGISTERED = False

_HISTORY_BUFFER_METHODS = ('min', 'max', 'current', 'mean')


class CheckpointSecurityError(pickle.UnpicklingError):
    """A checkpoint needs a global outside mmsamptx's allow-list."""

    def __init__(self, message, refused_global=None, filename=None):
        super().__init__(message)
        self.refused_global = refused_global
        self.filename = filename


def _history_buffer_getattr(obj, name, *default):
    """Stand-in for ``builtins.getattr`` inside ``weights_only`` unpickling.

    Only resolves ``HistoryBuffer.min/max/current/mean`` (the functions that
    ``HistoryBuffer.__getstate__`` stores); any other use is refused.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_METHODS and not default:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'Unsupported global: GLOBAL builtins.getattr was refused for '
        f'getattr({getattr(obj, "__qualname__", type(obj).__name__)}, {name!r}): '
        'mmsamptx only allows getattr(HistoryBuffer, min|max|current|mean)')


def _numpy_globals():
    from numpy._core import multiarray
    # float64: history buffers and ``eta``; int64: history counts;
    # float32: metric values kept in the message hub (``best_score``).
    dtypes = [np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType]
    return [multiarray._reconstruct, np.ndarray, np.dtype, multiarray.scalar] + dtypes


def _safe_globals():
    from mmengine.logging.history_buffer import HistoryBuffer
    return [HistoryBuffer] + _numpy_globals() + [(_history_buffer_getattr, 'builtins.getattr')]


def _name(entry):
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


#: Full pickle names of everything :func:`register_safe_globals` allow-lists.
SAFE_GLOBAL_NAMES = tuple(_name(g) for g in _safe_globals())
SAFE_GLOBALS = SAFE_GLOBAL_NAMES  # alias
_ALLOWED_TEXT = ', '.join(
    n + (' (restricted to HistoryBuffer.min/max/current/mean)' if n == 'builtins.getattr' else '')
    for n in SAFE_GLOBAL_NAMES)


_REFUSED = [
    re.compile(r'refused for (getattr\([^)]*\))'),
    re.compile(r'Unsupported global: GLOBAL ([\w\.]+)'),
    re.compile(r'unsupported GLOBAL ([\w\.]+)'),
    re.compile(r"but got <class '([\w\.]+)'>"),
    re.compile(r'unrecognized function (.+?)(?: which belongs|$)', re.M),
]


def _core_message(message):
    """torch's reason without its boilerplate (which suggests ``weights_only=False``)."""
    m = re.search(r'WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)', message, re.S)
    core = m.group(1) if m else message
    return ' '.join(core.split())


def _refused_global(message):
    for pattern in _REFUSED:
        m = pattern.search(message)
        if m:
            return m.group(1)
    return None


def safe_torch_load(f, map_location=None, filename=None):
    """``torch.load(f, map_location, weights_only=True)`` with a clear refusal message."""
    register_safe_globals()
    try:
        return torch.load(f, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        refused = _refused_global(message)
        name = filename if filename is not None else (f if isinstance(f, str) else '<stream>')
        raise CheckpointSecurityError(
            f'Refused to load checkpoint {name}: it needs the global '
            f'{refused or "(see below)"}, which is not on mmsamptx\'s allow-list. '
            'mmsamptx loads checkpoints with torch.load(weights_only=True) and '
            'does not unpickle arbitrary code; only tensors, plain containers and '
            f'these globals are accepted: {_ALLOWED_TEXT}. '
            f'torch: {_core_message(message)}',
            refused_global=refused, filename=name) from None


def load_from_local_safe(filename, map_location):
    """mmengine ``CheckpointLoader`` scheme for local paths, ``weights_only=True``."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return safe_torch_load(filename, map_location=map_location, filename=filename)


def register_safe_globals():
    """Allow-list the globals of an mmengine checkpoint and install the safe local loader.

    Idempotent: a second call does nothing. Returns :data:`SAFE_GLOBAL_NAMES`.
    """
    global _REGISTERED
    with _LOCK:
        if _REGISTERED:
            return SAFE_GLOBAL_NAMES
        torch.serialization.add_safe_globals(_safe_globals())
        from mmengine.runner.checkpoint import CheckpointLoader
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local_safe, force=True)
        _REGISTERED = True
    return SAFE_GLOBAL_NAMES
