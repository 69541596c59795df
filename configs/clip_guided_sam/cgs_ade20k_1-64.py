# CLIP-Guided SAM, semi-automatic, ADE20K 1/64 (UniMatch V2's 316 images). Paper: 47.9 (Table 3).
_base_ = [
    '../_base_/models/clip_guided_sam_vit_b.py', '../_base_/datasets/ade20k_authors.py',
    '../_base_/schedules/cgs_40e.py', '../_base_/default_runtime.py'
]
train_dataloader = dict(dataset=dict(dataset=dict(published_split='ade20k/1_64')))
log_processor = dict(by_epoch=True)
randomness = dict(seed=42)
