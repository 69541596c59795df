# Table 3 baseline, training-free: CLIPSurgery + SAM (modified): as the vanilla baseline, plus the
# binary similarity map as SAM's mask prompt. Evaluate without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_modified_cod.py none
# Paper: COD10K MAE 0.287.
_base_ = ['./clipsurgery-sam_vanilla_cod.py']
model = dict(train_cfg=dict(mask_prompt=True), test_cfg=dict(mask_prompt=True))
