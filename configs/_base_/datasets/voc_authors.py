# PASCAL VOC 2012 (20 object classes; background never prompted or scored; docs/datasets.md) under
# the authors' protocol: UniMatch's published split, (image, object class) pairs, squashed to 1024²,
# the authors' augmentations; validation on UniMatch's 1,449-image val list.
_base_ = ['./authors_pipeline.py']
dataset_type = 'PascalVOCSplitDataset'
data_root = 'data/VOCdevkit/VOC2012'
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
        on_empty='skip',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            published_split='pascal/92',
            pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        published_split='pascal/val',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='ClassWiseIoUMetric', size='mask', prefix='classwise'),
    dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='prompted'),
]
test_evaluator = val_evaluator
