# Table 3 baseline, training-free: CLIPSurgery + SAM (modified): as the vanilla baseline, plus the
# binary similarity map as SAM's mask prompt. Evaluate without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_modified_ade20k_1-64.py none
# Paper: ADE20K 23.4.
_base_ = ['./clipsurgery-sam_vanilla_ade20k_1-64.py']
model = dict(train_cfg=dict(mask_prompt=True), test_cfg=dict(mask_prompt=True))
