# EVF-SAM training (the code the authors did not release): SAM ViT-H (frozen encoder; mask decoder
# and no_mask_embed trained) + BEiT-3-L (all trained) + projector, on the train splits of RefCOCO,
# RefCOCO+ and RefCOCOg (unc, unc, umd), up to 3 expressions per image, BCE 2.0 + Dice 0.5 at the
# original size. Paper (RES-only checkpoint, cIoU): RefCOCO val 82.4 (docs/evf_sam.md); the
# authors expect about 82 on refcoco val from this training (hustvl/EVF-SAM#54).
_base_ = [
    '../_base_/models/evf_sam_vit-h.py', '../_base_/datasets/refcoco_referring.py',
    '../_base_/default_runtime.py'
]
# LISA's train_ds.py defaults (EVF-SAM's stated starting point; the paper's recipe is unknown):
# AdamW 3e-4, betas (0.9, 0.95), no weight decay, gradient clip 1.0, bf16, micro-batch 2 x 10
# accumulation steps x 8 GPUs, 100 warm-up and 5,000 optimiser steps. mmengine counts
# iterations per micro-batch: 10 x 5,000 = 50,000.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(type='AdamW', lr=3e-4, betas=(0.9, 0.95), weight_decay=0.0),
    clip_grad=dict(max_norm=1.0),
    accumulative_counts=10)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, end_factor=1.0, by_epoch=False, begin=0, end=1000),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, by_epoch=False, begin=1000,
         end=50000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=50000, val_interval=5000)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=2,
                    save_best='cIoU', rule='greater'),
    sampler_seed=dict(type='DistSamplerSeedHook'))
# SAM's unused mask tokens 1-3 and IoU head get no gradient with multimask='single'.
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
