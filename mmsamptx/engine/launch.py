"""What ``tools/train.py`` and ``tools/test.py`` share beyond mmseg's own tools.

* :func:`load_config`: a missing config file is one clear line (the tools
  exit with status 2), not a traceback.
* :func:`unknown_type_hint`: mmengine's ``KeyError: 'Foo is not in the
  mmseg::model registry ...'`` re-raised as :class:`UnknownTypeError` (still a
  ``KeyError``) that names the type and suggests ``custom_imports``.
* :func:`adapt_to_device`: on a machine without CUDA, ``env_cfg.dist_cfg``
  asks for ``gloo`` instead of ``nccl`` (with a log line), the ``pytorch``
  launcher's process group is initialised here (mmengine 0.10.7's
  ``init_dist`` calls ``torch.cuda.set_device`` unconditionally), and the DDP
  wrapper gets ``device_ids=None`` (CPU modules accept no device ids).
  In a worker that torchrun *restarted* (``MAX_RESTARTS``), the process group
  is built on the agent's store under a per-attempt prefix, see
  :func:`elastic_attempt_store`.
* :func:`build_runner`: ``Runner.from_cfg`` or, if the config names a
  ``runner_type``, mmseg's ``RUNNERS`` registry, as mmseg's tools do.
* :func:`close_process_group`: the tools' last step in a distributed run.
"""
import contextlib
import datetime
import logging
import os
import os.path as osp
import re

import torch
from mmengine.config import Config
from mmengine.logging import print_log

__all__ = [
    'ConfigNotFoundError', 'UnknownTypeError', 'load_config', 'unknown_type_hint',
    'adapt_to_device', 'build_runner', 'upgrade_checkpoint_hook', 'elastic_attempt_store',
    'close_process_group'
]


class ConfigNotFoundError(FileNotFoundError):
    """The config file given to a tool does not exist."""


class UnknownTypeError(KeyError):
    """A ``type`` in the config is registered nowhere in the current scope."""

    def __init__(self, message, type_name=None):
        super().__init__(message)
        self.message = message
        self.type_name = type_name

    def __str__(self):
        return self.message


def load_config(path):
    """``Config.fromfile(path)``, or :class:`ConfigNotFoundError` naming ``path``."""
    if not osp.isfile(path):
        raise ConfigNotFoundError(f'config file not found: {path}')
    return Config.fromfile(path)


_UNKNOWN = re.compile(r'`?([\w\.]+)`? is not in the ([\w:]+) registry')


@contextlib.contextmanager
def unknown_type_hint(config_path=None):
    """Turn mmengine's unknown-type ``KeyError`` into :class:`UnknownTypeError` with a hint."""
    try:
        yield
    except UnknownTypeError:
        raise
    except KeyError as e:
        text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
        m = _UNKNOWN.search(text)
        if m is None:
            raise
        type_name, registry = m.group(1), m.group(2)
        where = f' in {config_path}' if config_path else ''
        raise UnknownTypeError(
            f"unknown type '{type_name}'{where}: it is not in the {registry} registry. "
            'If it comes from a plugin, make the config import the module that '
            "registers it, e.g. custom_imports=dict(imports=['mmsamptx'], "
            'allow_failed_imports=False), and check default_scope and the spelling. '
            f'(mmengine: {text})',
            type_name=type_name) from e


def _cuda():
    return torch.cuda.is_available()


def adapt_to_device(cfg, launcher):
    """Make ``cfg`` runnable on this machine (see the module docstring). Returns ``cfg``."""
    if _cuda():
        if launcher == 'pytorch':
            _init_restarted_cuda_process_group(cfg.get('env_cfg', {}).get('dist_cfg', {}))
        return cfg
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        dist_cfg['backend'] = 'gloo'
        print_log(
            "CUDA is not available: env_cfg.dist_cfg.backend set to 'gloo' (the config asked for "
            "'nccl').", logger='current', level=logging.INFO)
    if launcher == 'none':
        return cfg
    if launcher != 'pytorch':
        raise RuntimeError(
            f"--launcher {launcher} needs CUDA with mmengine 0.10.7 (it binds one GPU per "
            "process); on a CPU-only machine use --launcher pytorch (tools/dist_train.sh).")
    _init_cpu_process_group(dist_cfg)
    _cpu_model_wrapper(cfg)
    return cfg


def _dist_kwargs(dist_cfg):
    kwargs = {k: v for k, v in dist_cfg.items() if k not in ('backend', 'init_backend')}
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    return kwargs


def _init_restarted_cuda_process_group(dist_cfg):
    """In a restarted torchrun worker: mmengine's CUDA init, on :func:`elastic_attempt_store`.

    A first attempt (or a non-elastic launch) is left to mmengine, as before.
    """
    import torch.distributed as dist
    import torch.multiprocessing as mp
    if dist_cfg.get('init_backend', 'torch') != 'torch' or (dist.is_available()
                                                            and dist.is_initialized()):
        return
    kwargs = _dist_kwargs(dist_cfg)
    store = elastic_attempt_store(kwargs.get('timeout'))
    if store is None:
        return
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    torch.cuda.set_device(int(os.environ['LOCAL_RANK']))
    dist.init_process_group(backend=dist_cfg.get('backend', 'nccl'), store=store,
                            rank=int(os.environ['RANK']),
                            world_size=int(os.environ['WORLD_SIZE']), **kwargs)


def _init_cpu_process_group(dist_cfg):
    """mmengine's ``_init_dist_pytorch`` without ``torch.cuda.set_device``."""
    import torch.distributed as dist
    import torch.multiprocessing as mp
    if dist.is_available() and dist.is_initialized():
        return
    kwargs = _dist_kwargs(dist_cfg)
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    store = elastic_attempt_store(kwargs.get('timeout'))
    if store is not None:
        kwargs.update(store=store, rank=int(os.environ['RANK']),
                      world_size=int(os.environ['WORLD_SIZE']))
    dist.init_process_group(backend=dist_cfg.get('backend', 'gloo'), **kwargs)


def elastic_attempt_store(timeout=None):
    """The torchrun agent's store under ``/mmsamptx/attempt_<restart count>``, or None.

    With torchrun's static rendezvous (``tools/dist_train.sh`` with
    ``MAX_RESTARTS``) the agent's TCPStore outlives a restart, and torch 2.11's
    ``env://`` rendezvous of a worker adds no per-attempt prefix ("we create a
    new TCPStore for every retry", torch/distributed/rendezvous.py). A
    restarted worker can then read the address that a peer of the *previous*
    attempt published, and gloo fails with ``connectFullMesh failed ...
    Connection refused`` (observed here about one restart in two). Keys under
    a prefix per restart count cannot be stale. Returns None for a first
    attempt, or when the worker does not use the agent's store.
    """
    attempt = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') or 0)
    if attempt == 0 or os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True':
        return None
    import torch.distributed as dist
    if timeout is None:
        timeout = datetime.timedelta(minutes=30)
    store = dist.TCPStore(os.environ['MASTER_ADDR'], int(os.environ['MASTER_PORT']),
                          int(os.environ['WORLD_SIZE']), is_master=False, timeout=timeout)
    return dist.PrefixStore(f'/mmsamptx/attempt_{attempt}', store)


def _cpu_model_wrapper(cfg):
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel
    wrapper = cfg.get('model_wrapper_cfg', None)
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        return
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper_cls = MODEL_WRAPPERS.get(wrapper['type']) if isinstance(wrapper['type'], str) \
        else wrapper['type']
    if wrapper_cls is not None and issubclass(wrapper_cls, DistributedDataParallel):
        wrapper.setdefault('device_ids', None)


def upgrade_checkpoint_hook(cfg):
    """Swap mmengine's plain ``CheckpointHook`` in ``default_hooks`` for ``AtomicCheckpointHook``."""
    hook = cfg.get('default_hooks', {}).get('checkpoint', None)
    if hook is not None and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook'):
        hook['type'] = 'AtomicCheckpointHook'
        print_log('default_hooks.checkpoint: CheckpointHook -> mmsamptx AtomicCheckpointHook '
                  '(atomic saves, prune after save).', logger='current', level=logging.INFO)
    return cfg


def build_runner(cfg):
    """``Runner.from_cfg(cfg)``, or ``RUNNERS.build(cfg)`` when ``runner_type`` is set."""
    if 'runner_type' not in cfg:
        from mmengine.runner import Runner
        return Runner.from_cfg(cfg)
    from mmseg.registry import RUNNERS
    return RUNNERS.build(cfg)


def close_process_group(clean=True):
    """After a clean run: meet the other ranks at a barrier, then destroy the process group.

    Left to interpreter teardown, gloo's threads and the store's client can be
    destroyed in either order, and a worker whose run had finished sometimes
    aborted there (``terminate called without an active exception``, exit
    code -6), which torchrun reports as a failed run. The barrier keeps any
    rank from tearing its connections down while a peer still uses them.
    After an error (``clean=False``) nothing is done: peers may be blocked in
    a collective waiting for this rank, and destroying the group (NCCL) can
    then block too, so the process exits at once and the launcher sees the
    failure.
    """
    import torch.distributed as dist
    if not clean or not (dist.is_available() and dist.is_initialized()):
        return
    dist.barrier()
    dist.destroy_process_group()
