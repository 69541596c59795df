# COCO 2017 "object" (80 thing classes + background, UniMatch's label PNGs: docs/datasets.md) under
# the authors' protocol: the published UniMatch split, each image expanded into its (image, present
# class) pairs of the 80 object classes (background is never prompted or scored), squashed to 1024²,
# the authors' augmentations; validation on UniMatch's 5,000-image val list.
_base_ = ['./authors_pipeline.py']
dataset_type = 'COCOObjectDataset'
data_root = 'data/coco'
# the authors' squash resize and augmentations (authors_pipeline.py); LoadAnnotations takes the
# dataset's own reduce_zero_label
train_pipeline = {{_base_.authors_train_pipeline}}
test_pipeline = {{_base_.authors_test_pipeline}}
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ClassPairDataset',
        exclude_classes=[0],  # background
        on_empty='skip',      # an image of background only has no pair (logged)
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            published_split='coco/1_512',
            pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        published_split='coco/val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='ClassWiseIoUMetric', size='mask', prefix='classwise'),
    dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='prompted'),
]
test_evaluator = val_evaluator
