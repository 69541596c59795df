# ADE20K (150 classes, mmseg's layout: docs/datasets.md) under the authors' protocol: the published
# UniMatch V2 split (downloaded and sha256-checked on first use), each image expanded into its
# (image, present class) pairs, an epoch visiting every pair once; squashed to 1024² (no padding),
# the authors' augmentations; validation on the 2,000 validation images, every present class
# prompted (= every (image, class) pair of the set). A top config picks the training split.
_base_ = ['./authors_pipeline.py']
dataset_type = 'ADE20KSplitDataset'
data_root = 'data/ade/ADEChallengeData2016'
# the authors' squash resize and augmentations (authors_pipeline.py); LoadAnnotations takes the
# dataset's own reduce_zero_label (ADE's 0, 'other', becomes 255: a negative for every class)
train_pipeline = {{_base_.authors_train_pipeline}}
test_pipeline = {{_base_.authors_test_pipeline}}
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ClassPairDataset',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            published_split='ade20k/1_64',
            # used by id-only split files (the seeded option, ann_file=...); UniMatch's lines
            # name both paths
            data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
            pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        published_split='ade20k/val',
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# The authors' class-wise binary IoU of every (image, class) pair at 256², and mmseg's IoUMetric
# of the semantic map assembled from the same predictions (each pixel: its best class).
val_evaluator = [
    dict(type='ClassWiseIoUMetric', size='mask', prefix='classwise'),
    dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='prompted'),
]
test_evaluator = val_evaluator
