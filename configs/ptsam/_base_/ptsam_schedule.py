# AdamW on the trainable parameters; 2,000 iterations of 2 images = 250 epochs of 16 shots.
_base_ = ['../../_base_/schedules/iter_16k.py']
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=100, end=2000),
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=2000, val_interval=500)
# rule: mmengine infers 'greater' only for keys it knows (acc, mIoU, ...), not for 'Dice'
default_hooks = dict(checkpoint=dict(interval=500, save_best='Dice', rule='greater'))
