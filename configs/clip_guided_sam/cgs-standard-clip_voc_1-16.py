# Text ablation: standard CLIP instead of CLIPSurgery (no value-value path), VOC 1/16. Paper: 72.8.
_base_ = ['./cgs_voc_1-16.py']
model = dict(guide=dict(surgery_blocks=0))
