# Table 6: no adapters at all (the CLIP prompts, the decoder and the prompt encoder train), VOC 1/16.
# Paper: 66.6.
_base_ = ['./cgs_voc_1-16.py']
model = dict(backbone=dict(adapter_cfg=None, attn_adapter_cfg=None))
