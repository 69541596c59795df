# What the training-free "CLIPSurgery + SAM (vanilla)" baseline of Table 3 changes in a CLIP-Guided
# SAM config: a frozen SAM without adapters, prompted with 5 points from CLIPSurgery's similarity map
# only (the number of points and the threshold are not stated: ours are the method's, 5 and 0.8),
# nothing trained. A dataset's baseline config merges it into that dataset's CLIP-Guided SAM config:
#   _base_ = ['./cgs_<dataset>.py', '../_base_/models/clipsurgery_sam.py']
#   model = {{_base_.clipsurgery_sam_vanilla}}
clipsurgery_sam_vanilla = dict(
    backbone=dict(adapter_cfg=None, attn_adapter_cfg=None),
    decode_head=dict(frozen_prompt_encoder=True, frozen_decoder=True),
    guide=dict(finetune_attn_blocks=0),
    train_cfg=dict(mask_prompt=False),
    test_cfg=dict(mask_prompt=False))
