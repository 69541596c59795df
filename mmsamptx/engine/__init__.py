"""Training machinery: safe loading, atomic checkpoints, fault handling, tool helpers.

Importing this package registers, in mmseg's registries, the hooks
``ClassNamesCheckHook``, ``AtomicCheckpointHook``, ``RandomStateHook`` (exact resume),
``NonFiniteLossHook`` (NaN/Inf losses: stop or skip) and
``BadSampleCounterHook``, the dataset wrapper ``SkipBadSamples`` (corrupt
images/masks: stop naming the file, or skip), the ``'atomic_local'`` mmengine
file backend, and calls :func:`register_safe_globals` (idempotent).
``import mmsamptx`` imports it, so
``custom_imports=dict(imports=['mmsamptx'])`` is all a config needs. See
``docs/training.md``.
"""
from .class_names_check_hook import ClassNamesCheckHook, check_class_names
from .atomic_checkpoint import ATOMIC_BACKEND_ARGS, AtomicCheckpointHook, AtomicLocalBackend
from .bad_samples import (BadSampleCounterHook, BadSampleError, SkipBadSamples,
                          check_sample_file, configure_bad_data)
from .launch import (ConfigNotFoundError, UnknownTypeError, adapt_to_device, build_runner,
                     close_process_group, elastic_attempt_store, load_config,
                     unknown_type_hint, upgrade_checkpoint_hook)
from .nonfinite import (NonFiniteLossError, NonFiniteLossHook, NonFiniteModelError,
                        configure_nonfinite)
from .random_state import (RANDOM_STATES_KEY, RandomStateHook, call_after_dataloader_advance,
                           get_random_states, set_random_states)
from .safe_load import (SAFE_GLOBAL_NAMES, CheckpointSecurityError, load_from_local_safe,
                        register_safe_globals, safe_torch_load)

register_safe_globals()

__all__ = [
    'ClassNamesCheckHook', 'check_class_names',
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'ATOMIC_BACKEND_ARGS', 'register_safe_globals',
    'safe_torch_load', 'load_from_local_safe', 'SAFE_GLOBAL_NAMES', 'CheckpointSecurityError',
    'ConfigNotFoundError', 'UnknownTypeError', 'load_config', 'unknown_type_hint',
    'adapt_to_device', 'build_runner', 'upgrade_checkpoint_hook', 'elastic_attempt_store',
    'close_process_group', 'RandomStateHook',
    'RANDOM_STATES_KEY', 'get_random_states', 'set_random_states',
    'call_after_dataloader_advance', 'NonFiniteLossHook', 'NonFiniteLossError',
    'NonFiniteModelError', 'configure_nonfinite', 'SkipBadSamples', 'BadSampleError',
    'BadSampleCounterHook', 'check_sample_file', 'configure_bad_data'
]
