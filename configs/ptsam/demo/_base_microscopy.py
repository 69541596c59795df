# Tiny CPU variants of the PTSAM comparison: a tiny random SAM on the generated microscopy-like
# task (mmsamptx.demo.make_microscopy), 16 training shots, the rest held out, foreground Dice.
_base_ = ['../../demo/_base_demo.py']
data_root = 'work_dirs/ptsam_demo/data/microscopy'  # make_microscopy(data_root) writes it
img_size = 128
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),  # deterministic otherwise: cached embeddings get reused
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
microscopy = dict(type='FewShotBinaryDataset', data_root=data_root, num_shots=16, seed=0)
train_dataloader = dict(
    _delete_=True, batch_size=4, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(microscopy, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True, batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(microscopy, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='BinaryDiceMetric')
test_evaluator = val_evaluator
model = dict(
    class_names='FewShotBinaryDataset',
    # SAM's own losses (focal 20 : dice 1 : IoU-MSE 1 at the input size), not the SAM-PTx demo's
    decode_head=dict(mask_loss='focal', loss_weights=dict(mask=20.0, dice=1.0, iou=1.0, soft_iou=0.0),
                     dice_eps=1.0, loss_size='input'))
