# Table 3 baseline: CLIPSurgery + SAM with adapters (SU-SAM Parallel, no semantic inputs) and the mask
# decoder fine-tuned; CLIP frozen. Paper: ADE20K 24.8.
_base_ = ['./clipsurgery-sam_decoder_ade20k_1-64.py']
model = dict(backbone=dict(
    adapter_cfg=dict(_delete_=True, type='ParallelAdapter', ratio=0.25, scale=0.5, zero_init=False),
    attn_adapter_cfg=dict(_delete_=True, type='AttentionAdapter', ratio=0.25, scale=0.5,
                          inner_skip=True)))
