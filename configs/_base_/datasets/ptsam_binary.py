# Binary (foreground / background) few-shot segmentation at SAM's input size, shared by PTSAM's datasets
# (./ptsam_<dataset>.py) and configs/ptsam/_base_/fewshot16_binary.py. As is, it reads any dataset in
# PTSAM's converted layout (PTSAMBinaryDataset: splits 'train' / 'test', .png images):
#   <data_root>/<split>/images/<id>, <data_root>/<split>/masks/<id>.png (0/255),
#   <data_root>/splits/train_<N>shot_seed<S>.txt (tools/dataset_converters/ptsam_few_shot.py)
# Input at SAM's size: longest side resized to 1024, then padded by the model (this library's choice;
# the paper's text was not readable here). Foreground Dice / IoU (BinaryDiceMetric).
# A child that changes dataset_type / data_root sets them in the dataloaders' dataset dicts too:
# mmengine does not re-evaluate this file's dicts with a child's variables.
dataset_type = 'PTSAMBinaryDataset'
data_root = 'data/ptsam/binary'
crop_size = 1024  # SAM's input side: longest side resized to it, then padded
num_shots = 16  # labelled training images (the paper's headline setting)
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
    dataset=dict(type=dataset_type, data_root=data_root, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BinaryDiceMetric')
test_evaluator = val_evaluator
