# Demo comparison: the spatial Parallel-Adapter (no text).
_base_ = ['./_base_demo.py']
model = dict(backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter', bottleneck=16, scale=1.0)))
