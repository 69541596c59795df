# Demo comparison: the spatial Parallel-Adapter (no text), in this library's zero-initialised form
# (r = 16, the untrained adapter is SAM); the authors' form is ParallelAdapter's defaults.
_base_ = ['./_base_demo.py']
model = dict(backbone=dict(adapter_cfg=dict(
    _delete_=True, type='ParallelAdapter',
    bottleneck=16,      # adapter width r
    scale=1.0,          # fixed factor on the adapter branch
    zero_init=True)))   # up-projection starts at zero
