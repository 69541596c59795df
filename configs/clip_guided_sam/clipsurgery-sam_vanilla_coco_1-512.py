# Table 3 baseline, training-free: CLIPSurgery + SAM (vanilla), the data and test of cgs_coco_1-512.py: a frozen
# SAM without adapters prompted with 5 points from CLIPSurgery's similarity map only. Evaluate
# without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_vanilla_coco_1-512.py none
# Paper: COCO 23.9.
_base_ = ['./cgs_coco_1-512.py', '../_base_/models/clipsurgery_sam.py']
model = {{_base_.clipsurgery_sam_vanilla}}
