from .attach import attach_adapters
from .parallel_adapter import ParallelAdapter
from .parallel_text_adapter import ParallelTextAdapter

__all__ = ['attach_adapters', 'ParallelAdapter', 'ParallelTextAdapter']
