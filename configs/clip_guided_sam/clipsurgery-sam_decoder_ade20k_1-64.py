# Table 3 baseline: CLIPSurgery + SAM with SAM's mask decoder fine-tuned (CLIP, the encoder and the
# prompt encoder frozen, no adapters; points and mask prompt from the similarity map). Paper: ADE20K 23.1.
_base_ = ['./clipsurgery-sam_modified_ade20k_1-64.py']
model = dict(decode_head=dict(frozen_decoder=False))
