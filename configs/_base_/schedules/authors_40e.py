# The authors' optimisation (method notes 6.7, train.py defaults): AdamW with one group per part,
# adapters (and every other new module) at 1e-4, SAM's mask decoder at 5e-5, no weight decay,
# constant learning rate, fp32, no gradient clipping; 40 epochs of (image, class) pairs, batch 2
# (the authors: 1 pair per GPU on 2 GPUs; with N GPUs here set train_dataloader.batch_size = 2 / N).
# Validation after every epoch; the best checkpoint by the class-wise mIoU is kept.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    paramwise_cfg=dict(custom_keys={'decode_head.mask_decoder': dict(lr_mult=0.5)}))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=True, begin=0, end=40)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=40, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=True),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=True, interval=1, max_keep_ckpts=1,
                    save_best='classwise/mIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
