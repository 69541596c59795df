# CLIP-Guided SAM, semi-automatic, COCO 1/512 (UniMatch's 232 images). Paper: 60.5 (Table 3).
_base_ = [
    '../_base_/models/clip_guided_sam_vit_b.py', '../_base_/datasets/coco_authors.py',
    '../_base_/schedules/cgs_40e.py', '../_base_/default_runtime.py'
]
model = dict(class_names='COCOObjectDataset',
             test_cfg=dict(target_classes=list(range(1, 81)), background_class=0))
train_dataloader = dict(dataset=dict(dataset=dict(published_split='coco/1_512')))
log_processor = dict(by_epoch=True)
randomness = dict(seed=42)
