# Comparison: text enters SAM's prompt encoder as one more sparse token [3.7]: Linear(512 -> 256,
# no bias, N(0, 0.02)) plus a learned text-type embedding, after the 5 points and SAM's padding
# token. Which encoder the authors paired with it is not stated: SAM's, unadapted, here.
_base_ = ['../samptx_ade20k_1-64.py']
model = dict(
    backbone=dict(adapter_cfg=None, attn_adapter_cfg=None),
    decode_head=dict(text_injection='prompt_encoder', text_dims=512))
