"""Which autocast dtype a device runs natively, and the autocast context of a setting."""
import contextlib
import functools
from typing import Optional

import torch

AUTOCAST_DTYPES = (None, 'auto', 'bfloat16', 'float16')


@functools.lru_cache(maxsize=None)  # asked at every encoder forward; fixed per process
def bf16_is_native(device_type: str) -> bool:
    """Whether the device computes bfloat16 natively (CUDA with bf16; a CPU with AVX512-BF16/AMX)."""
    if device_type == 'cuda':
        # not emulated: GPUs before compute capability 8 "support" bf16 only slowly
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type == 'cpu':
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_autocast_dtype(name: Optional[str], device_type: str) -> Optional[torch.dtype]:
    """The torch dtype of an ``autocast_dtype`` setting on a device (None: float32, no autocast).

    ``'auto'`` is bfloat16 where the device computes it natively, else None.
    """
    if name not in AUTOCAST_DTYPES:
        raise ValueError(f'autocast_dtype must be one of {AUTOCAST_DTYPES}, got {name!r}')
    if name == 'auto':
        return torch.bfloat16 if bf16_is_native(device_type) else None
    return None if name is None else getattr(torch, name)


def autocast_context(name: Optional[str], device_type: str, keep_outer: bool = False):
    """``torch.autocast`` for an ``autocast_dtype`` setting on a device. With no dtype (None, or
    ``'auto'`` where the device has no native bfloat16) autocast is switched off inside, or,
    with ``keep_outer``, left as an outer autocast (e.g. mmengine's AmpOptimWrapper) set it."""
    dtype = resolve_autocast_dtype(name, device_type)
    if dtype is None and keep_outer:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype or torch.float32,
                          enabled=dtype is not None)
