# Table 3 baseline: CLIPSurgery + SAM with SAM's mask decoder fine-tuned (CLIP, the encoder and the
# prompt encoder frozen, no adapters; points and mask prompt from the similarity map). Paper: VOC 58.8.
_base_ = ['./clipsurgery-sam_modified_voc_1-16.py']
model = dict(decode_head=dict(frozen_decoder=False))
