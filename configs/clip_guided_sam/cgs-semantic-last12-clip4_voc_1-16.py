# Table 7: semantic adapters in the last 12 SAM blocks, CLIP attention tuned in the last 4 blocks,
# VOC 1/16. Paper: 77.1.
_base_ = ['./cgs_voc_1-16.py']
model = dict(guide=dict(finetune_attn_blocks=4))
