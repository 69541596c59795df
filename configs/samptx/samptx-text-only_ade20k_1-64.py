# SAM-PTx evaluated text-only: every ADE20K class prompted by its name alone, no ground truth
# used at test time (trained as configs/samptx_ade20k_1-64.py). Logged as 'text/mIoU'.
_base_ = ['../samptx_ade20k_1-64.py']
inference_mode = 'text'
model = dict(test_cfg=dict(mode=inference_mode))
val_evaluator = dict(prefix=inference_mode)
test_evaluator = dict(prefix=inference_mode)
default_hooks = dict(checkpoint=dict(save_best=f'{inference_mode}/mIoU'))
