# Table 6 (modalities in the semantic adapters): vision sim, VOC 1/16 semi-automatic.
# Paper: 77.5.
_base_ = ['./cgs_voc_1-16.py']
model = dict(backbone=dict(adapter_cfg=dict(use_text=False)))
