# EMParticles, read here as EMPS (Yildirim & Cole 2021, github.com/by256/emps): particles in electron
# micrographs. Official lists train.csv (366) / test.csv (99); shots from 'train', test set 'test'.
# Prepare: docs/ptsam.md, "Datasets" (tools/dataset_converters/em_particles.py download / convert / verify,
# then tools/dataset_converters/ptsam_few_shot.py for the N-shot list). The converted layout is
#   <data_root>/<split>/images/<id>, <data_root>/<split>/masks/<id>.png (0/255),
#   <data_root>/splits/train_<N>shot_seed<S>.txt
# Input at SAM's size: longest side resized to 1024, then padded by the model (this library's choice;
# the paper's text was not readable here). Foreground Dice / IoU (BinaryDiceMetric).
dataset_type = 'EMParticlesDataset'
data_root = 'data/ptsam/em_particles'
num_shots = 16  # labelled training images (the paper's headline setting)
shot_seed = 0  # which N-shot list: splits/train_<num_shots>shot_seed<shot_seed>.txt
test_split = 'test'
crop_size = 1024
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
    dataset=dict(type=dataset_type, data_root=data_root, split='train', num_shots=num_shots,
                 seed=shot_seed, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type=dataset_type, data_root=data_root, split=test_split,
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BinaryDiceMetric')
test_evaluator = val_evaluator
