"""Training/testing machinery: safe checkpoint loading, atomic checkpoint saving, tool helpers.

Importing this package registers ``AtomicCheckpointHook`` (mmseg ``HOOKS``) and
the ``'atomic_local'`` mmengine file backend, and calls
:func:`register_safe_globals` (idempotent). ``import mmsamptx`` imports it, so
``custom_imports=dict(imports=['mmsamptx'])`` is all a config needs.
"""
from .class_names_check_hook import ClassNamesCheckHook, check_class_names
from .atomic_checkpoint import ATOMIC_BACKEND_ARGS, AtomicCheckpointHook, AtomicLocalBackend
from .launch import (ConfigNotFoundError, UnknownTypeError, adapt_to_device, build_runner,
                     load_config, unknown_type_hint, upgrade_checkpoint_hook)
from .safe_load import (SAFE_GLOBAL_NAMES, CheckpointSecurityError, load_from_local_safe,
                        register_safe_globals, safe_torch_load)

register_safe_globals()

__all__ = [
    'ClassNamesCheckHook', 'check_class_names',
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'ATOMIC_BACKEND_ARGS', 'register_safe_globals',
    'safe_torch_load', 'load_from_local_safe', 'SAFE_GLOBAL_NAMES', 'CheckpointSecurityError',
    'ConfigNotFoundError', 'UnknownTypeError', 'load_config', 'unknown_type_hint',
    'adapt_to_device', 'build_runner', 'upgrade_checkpoint_hook'
]
