# Baseline (tiny): SAM-PTx's spatial Parallel-Adapter beside every encoder MLP + decoder
# fine-tuning, one point prompt per class, prompted test.
_base_ = ['./_base_microscopy.py']
model = dict(backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter', bottleneck=16,
                                            scale=1.0)))
