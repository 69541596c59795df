# Comparison: text enters the mask decoder through one cross-attention block before the two-way
# transformer [3.8]: tokens <- LN(tokens + MHA(tokens, t, t)); tokens <- LN(tokens + FFN(tokens)).
# Encoder: SAM's, unadapted (the authors' 'MD_Text' selector would add the spatial adapters of
# parallel-adapter.py; not stated for SAM-PTx).
_base_ = ['../samptx_ade20k_1-64.py']
model = dict(
    backbone=dict(adapter_cfg=None, attn_adapter_cfg=None),
    decode_head=dict(text_injection='decoder_cross_attn', text_dims=512))
