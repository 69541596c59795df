# CLIP-Guided SAM, Table 4 scaling row "Ours (CLIP-B + SAM-H)": COCO 1/512, semi-automatic.
# Paper: 61.2 mIoU, 50 M trainable / 809 M total. SAM ViT-H (width 1280, 32 blocks) with the
# authors' adapters at r = 0.25 * 1280 = 320; the paper's 50 M only fits with the adapters
# (regular and semantic) in about 6 of the 32 blocks (method notes section 4): the paper does not
# say which, we take the last 6 (blocks 26-31, the end the semantic adapters fill in Table 7).
_base_ = ['./cgs_coco_1-512.py']
sam_checkpoint = 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth'
adapter_blocks = [26, 27, 28, 29, 30, 31]
model = dict(
    backbone=dict(
        arch='vit_h', checkpoint=sam_checkpoint,
        adapter_cfg=dict(blocks=adapter_blocks),
        attn_adapter_cfg=dict(blocks=adapter_blocks)),
    neck=dict(in_channels=1280, checkpoint=sam_checkpoint),
    decode_head=dict(checkpoint=sam_checkpoint))
