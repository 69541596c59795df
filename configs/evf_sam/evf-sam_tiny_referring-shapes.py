# A tiny EVF-SAM (SAM 'tiny' at 64², BEiT-3 'tiny' at 32²) on the generated referring-shapes task
# ("the red square", "the circle on the left"; mmsamptx/demo/referring_shapes.py) in RefCOCO's
# layout: a CPU-sized run of the same code path as the ViT-H configs (train, validate, test).
_base_ = ['../_base_/datasets/refcoco_referring.py', '../_base_/default_runtime.py']
data_root = 'work_dirs/evf_sam_demo/referring_shapes'  # write_referring_shapes(data_root)
model = dict(
    type='EVFSAM',
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    visual_model=dict(type='EVFVisualSAM', arch='tiny', img_size=64,
                      encoder_cfg=dict(patch_size=8),   # an 8 x 8 embedding grid at 64²
                      decoder=dict(mlp_dim=256)),
    fusion_encoder=dict(type='BEiT3', arch='tiny', img_size=32, vocab_size=80,
                        max_source_positions=40),
    projector=dict(type='EVFPromptProjector'),
    tokenizer=dict(model_file=data_root + '/sentencepiece.bpe.model'),  # written with the data
    test_cfg=dict(lowercase=True, chunk=32),
    loss_weights=dict(bce=0.5, dice=2.0))
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, type='RefCOCODataset', data_root=data_root, dataset='refcoco',
                 split='train', group_by='image', pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.0),
                     clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=20)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=300, val_interval=300)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=300, max_keep_ckpts=1),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
