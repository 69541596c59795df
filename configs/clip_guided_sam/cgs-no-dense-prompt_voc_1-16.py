# Text ablation: no dense similarity prompt (points and adapters only), VOC 1/16. Paper: 77.6.
_base_ = ['./cgs_voc_1-16.py']
model = dict(train_cfg=dict(mask_prompt=False), test_cfg=dict(mask_prompt=False))
