# Table 3 baseline: CLIPSurgery + SAM with SAM's mask decoder fine-tuned (CLIP, the encoder and the
# prompt encoder frozen, no adapters; points and mask prompt from the similarity map). Paper: COD10K MAE 0.045.
_base_ = ['./clipsurgery-sam_modified_cod.py']
model = dict(decode_head=dict(frozen_decoder=False))
