from .io import atomic_torch_save, atomic_write

__all__ = ['atomic_write', 'atomic_torch_save']
