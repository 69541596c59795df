# Table 3 baseline, training-free: CLIPSurgery + SAM (vanilla): a frozen SAM without adapters prompted
# with 5 points from CLIPSurgery's similarity map only (the number of points and the threshold are not
# stated: ours are the method's, 5 and 0.8). Evaluate without training:
#   python tools/test.py configs/clip_guided_sam/clipsurgery-sam_vanilla_voc_1-16.py none
# Paper: VOC 41.2, ADE20K 20.0, COCO 23.9.
_base_ = ['./cgs_voc_1-16.py']
model = dict(
    backbone=dict(adapter_cfg=None, attn_adapter_cfg=None),
    decode_head=dict(frozen_prompt_encoder=True, frozen_decoder=True),
    guide=dict(finetune_attn_blocks=0),
    train_cfg=dict(mask_prompt=False),
    test_cfg=dict(mask_prompt=False))
