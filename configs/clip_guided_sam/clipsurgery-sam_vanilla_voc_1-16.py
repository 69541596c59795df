# Table 3 baseline, training-free: CLIPSurgery + SAM (vanilla), the data and test of cgs_voc_1-16.py: a frozen
# SAM without adapters prompted with 5 points from CLIPSurgery's similarity map only. Evaluate
# without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_vanilla_voc_1-16.py none
# Paper: VOC 41.2.
_base_ = ['./cgs_voc_1-16.py', '../_base_/models/clipsurgery_sam.py']
model = {{_base_.clipsurgery_sam_vanilla}}
