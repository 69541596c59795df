# Demo comparison: SU-SAM's spatial Parallel-Adapter (no text) as the authors built it, at the tiny
# architecture: the regular adapter beside attention (inner skip) and a bottleneck beside the MLP,
# r = 16, scale 0.5, PyTorch's default init.
_base_ = ['./_base_demo.py']
model = dict(backbone=dict(
    adapter_cfg=dict(_delete_=True, type='ParallelAdapter', ratio=0.25, scale=0.5, zero_init=False),
    attn_adapter_cfg=dict(type='AttentionAdapter', ratio=0.25, scale=0.5, inner_skip=True)))
