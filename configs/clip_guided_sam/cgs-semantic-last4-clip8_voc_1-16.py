# Table 7: semantic adapters in the last 4 SAM blocks, CLIP attention tuned in the last 8 blocks,
# VOC 1/16. Paper: 77.2.
_base_ = ['./cgs-semantic-last4_voc_1-16.py']
model = dict(guide=dict(finetune_attn_blocks=8))
