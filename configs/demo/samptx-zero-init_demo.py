# Demo SAM-PTx in this library's zero-initialised variant (an option, not the paper's form): the
# Parallel-Text adapter beside the MLP only, text projected linearly into the bottleneck (r = 16),
# the up projection starting at zero so the untrained model is SAM; no attention-side adapter.
_base_ = ['./samptx_demo.py']
model = dict(backbone=dict(
    adapter_cfg=dict(_delete_=True, type='ParallelTextAdapter', text_dims=64, bottleneck=16,
                     scale=1.0, zero_init=True, text_input='bottleneck'),
    attn_adapter_cfg=None))
