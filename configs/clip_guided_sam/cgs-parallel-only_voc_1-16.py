# Table 6 (modalities in the semantic adapters): parallel only, VOC 1/16 semi-automatic.
# Paper: 67.1.
_base_ = ['./cgs_voc_1-16.py']
model = dict(backbone=dict(adapter_cfg=dict(use_text=False, use_vision=False, use_similarity=False)))
