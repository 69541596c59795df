# SAM-PTx on COCO 1/512 (UniMatch's 232 images), SAM ViT-B, CLIP ViT-B/16, as its authors ran it.
# Paper (arXiv 2508.00213): class-wise mIoU 67.35 (decoder-only 62.09), class name + 5 GT points.
_base_ = [
    '../_base_/models/samptx_vit_b.py', '../_base_/datasets/coco_authors.py',
    '../_base_/schedules/authors_40e.py', '../_base_/default_runtime.py'
]
model = dict(
    class_names='COCOObjectDataset',
    # the 80 object classes are prompted and scored; a pixel none of them claims is background (0)
    test_cfg=dict(target_classes=list(range(1, 81)), background_class=0))
train_dataloader = dict(dataset=dict(dataset=dict(published_split='coco/1_512')))
# Epoch-based logging; the authors' seed (42 for python, numpy and torch, the same on every rank).
log_processor = dict(by_epoch=True)
randomness = dict(seed=42)
