# The `make demo` task: a tiny SAM on the generated ambiguous-shapes set (ADE20K layout), CPU-sized.
_base_ = ['../_base_/default_runtime.py']
data_root = 'work_dirs/demo/data/ADEChallengeData2016'  # written by tools/demo.py
img_size = 128
class_names = ('wall', 'plate', 'tray')
metainfo = dict(classes=class_names, palette=[[120, 120, 120], [220, 60, 60], [60, 90, 220]])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(img_size, img_size), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
dataset = dict(type='ADE20KSplitDataset', data_root=data_root, metainfo=metainfo)
train_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(dataset, data_prefix=dict(img_path='images/training',
                                           seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(dataset, data_prefix=dict(img_path='images/validation',
                                           seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
# The inference mode (model.test_cfg.mode) names the logged metric: 'prompted/mIoU'.
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='prompted')
test_evaluator = val_evaluator

model = dict(
    type='ClassPromptedSAM',
    data_preprocessor=dict(
        type='SegDataPreProcessor', mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True, pad_val=0, seg_pad_val=255, size=(img_size, img_size),
        test_cfg=dict(size=(img_size, img_size))),
    class_names=class_names,
    backbone=dict(type='SAMImageEncoder', arch='tiny', img_size=img_size, adapter_cfg=None),
    neck=dict(type='SAMNeck', in_channels=64, out_channels=256),
    # the SAM-PTx authors' loss: BCE + Dice + soft IoU, 1:1:1, at the decoder's mask size
    decode_head=dict(type='SAMPromptableHead', image_size=img_size, frozen_decoder=False,
                     decoder=dict(mlp_dim=512), mask_loss='bce',
                     loss_weights=dict(mask=1.0, dice=1.0, iou=0.0, soft_iou=1.0), dice_eps=1e-6,
                     loss_size='mask'),
    text_encoder=None,
    train_cfg=dict(classes_per_image=2, num_points=1),
    test_cfg=dict(mode='prompted', num_points=1, class_chunk=8),
    seed=0)

optim_wrapper = dict(type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=0, end=300)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=100)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=300, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook', interval=4))  # with --show-dir: 6 overlays
env_cfg = dict(dist_cfg=dict(backend='gloo'))
