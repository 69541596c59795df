# SAM-PTx (Parallel-Text adapters) on ADE20K 1/64 (UniMatch V2's 316 images), SAM ViT-B, CLIP ViT-B/16,
# as its authors ran it (docs/samptx.md). Paper (arXiv 2508.00213): class-wise mIoU 71.38
# (decoder-only 67.29), manual prompts: class name + 5 points from the ground truth.
_base_ = [
    '_base_/models/samptx_vit_b.py', '_base_/datasets/ade20k_authors.py',
    '_base_/schedules/authors_40e.py', '_base_/default_runtime.py'
]
train_dataloader = dict(dataset=dict(dataset=dict(published_split='ade20k/1_64')))
# Epoch-based logging; the authors' seed (42 for python, numpy and torch, the same on every rank).
log_processor = dict(by_epoch=True)
randomness = dict(seed=42)
