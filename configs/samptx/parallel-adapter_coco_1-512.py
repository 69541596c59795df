# Comparison: SU-SAM's spatial Parallel-Adapter, no text [3.5]: in every block the regular adapter
# beside attention (inner skip) and the same bottleneck beside the MLP, without text
# (7,100,928 adapter parameters at ViT-B; the authors' unused Depth_Adapter is not built).
_base_ = ['./samptx_coco_1-512.py']
model = dict(
    backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter', blocks=None, ratio=0.25,
                                   scale=0.5, zero_init=False)),
    text_encoder=None)
