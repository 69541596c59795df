# Table 3 baseline, training-free: CLIPSurgery + SAM (vanilla), the data and test of cgs_ade20k_1-64.py: a frozen
# SAM without adapters prompted with 5 points from CLIPSurgery's similarity map only. Evaluate
# without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_vanilla_ade20k_1-64.py none
# Paper: ADE20K 20.0.
_base_ = ['./cgs_ade20k_1-64.py', '../_base_/models/clipsurgery_sam.py']
model = {{_base_.clipsurgery_sam_vanilla}}
