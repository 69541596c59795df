# Few-shot binary segmentation (microscopy / medical) at SAM's input size: 16 training shots,
# every other image held out; foreground Dice / IoU (BinaryDiceMetric).
# Prepare: docs/datasets.md, "Few-shot binary segmentation" (default: DSB 2018 nuclei, folder layout).
dataset_type = 'FewShotBinaryDataset'
data_root = 'data/dsb2018_binary'
crop_size = 1024  # SAM's input side: longest side resized to it, then padded
num_shots = 16
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(crop_size, crop_size), keep_ratio=True),
    # Only flips: with a frozen encoder every (image, flip) embedding is cached after epoch 1.
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(crop_size, crop_size), keep_ratio=True),
    dict(type='LoadAnnotations'),  # read by the metric (and by prompted evaluation's points)
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, split='train', num_shots=num_shots, seed=0,
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split='test', num_shots=num_shots, seed=0,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BinaryDiceMetric')
test_evaluator = val_evaluator
