# Table 3 baseline, training-free: CLIPSurgery + SAM (vanilla), the data and test of cgs_cod.py: a frozen
# SAM without adapters prompted with 5 points from CLIPSurgery's similarity map only. Evaluate
# without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_vanilla_cod.py none
# Paper: COD10K MAE 0.533.
_base_ = ['./cgs_cod.py', '../_base_/models/clipsurgery_sam.py']
model = {{_base_.clipsurgery_sam_vanilla}}
