# Runtime shared by every mmsamptx config: mmseg's scope plus this plugin's components.
default_scope = 'mmseg'
custom_imports = dict(imports=['mmsamptx'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
tta_model = None
# ClassNamesCheckHook: the model's class names must be the dataset's (checked before train /
# val / test). Fault handling (mmsamptx.engine, see docs/training.md): exact resume (RNG states in the
# checkpoint), stop on a NaN/Inf loss naming the term (never saving a non-finite model), and the
# skip counter of SkipBadSamples (wrap train_dataloader.dataset or use train.py --bad-data).
# A config that sets its own custom_hooks replaces this list: keep these entries in it.
custom_hooks = [
    dict(type='ClassNamesCheckHook'),
    dict(type='RandomStateHook'),
    dict(type='NonFiniteLossHook', action='stop'),
    dict(type='BadSampleCounterHook'),
]
