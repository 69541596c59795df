# Baseline: SAM's mask decoder fine-tuned with point prompts, no adapter, no text.
# Paper: mIoU 67.29 on ADE20K 1/64.
_base_ = ['../samptx_ade20k_1-64.py']
model = dict(backbone=dict(adapter_cfg=None), text_encoder=None)
