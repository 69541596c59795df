# Comparison: the spatial Parallel-Adapter (the same branch beside every MLP, without text).
_base_ = ['../samptx_ade20k_1-64.py']
model = dict(
    backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter', bottleneck=64, scale=0.5)),
    text_encoder=None)
