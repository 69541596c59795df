# Comparison: text injected into the mask decoder (an extra output token), no adapter.
_base_ = ['../samptx_ade20k_1-64.py']
model = dict(
    backbone=dict(adapter_cfg=None),
    decode_head=dict(text_injection='decoder', text_dims=512))
