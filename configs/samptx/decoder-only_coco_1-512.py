# Baseline: SAM's encoder and prompt encoder frozen and unadapted, the mask decoder trained, point
# prompts only (no text) [method notes 3.6].
_base_ = ['./samptx_coco_1-512.py']
model = dict(backbone=dict(adapter_cfg=None, attn_adapter_cfg=None), text_encoder=None)
