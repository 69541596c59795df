# Baseline (tiny): a spatial Parallel-Adapter beside every encoder MLP (zero-initialised) + decoder
# fine-tuning, one point prompt per class, prompted test.
_base_ = ['./_base_microscopy.py']
model = dict(backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter',
                                            bottleneck=16,    # adapter width r
                                            scale=1.0,        # fixed factor on the adapter branch
                                            zero_init=True)))  # up-projection starts at zero
