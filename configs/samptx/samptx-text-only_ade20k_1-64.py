# SAM-PTx (trained as configs/samptx_ade20k_1-64.py) evaluated by class names alone: every ADE20K
# class prompted by its name, no ground truth used at test time; mmseg's IoUMetric of the
# assembled map, logged as 'text/mIoU' (the class-wise metric scores GT-prompted pairs).
_base_ = ['../samptx_ade20k_1-64.py']
model = dict(test_cfg=dict(mode='text'))
val_evaluator = [dict(type='IoUMetric', iou_metrics=['mIoU'], prefix='text')]
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='text/mIoU'))
