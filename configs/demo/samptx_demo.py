# Demo SAM-PTx: Parallel-Text adapters in every block, fed with a (tiny, random) CLIP text tower.
_base_ = ['./_base_demo.py']
model = dict(
    backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelTextAdapter', text_dims=64, bottleneck=16,
                                   scale=1.0)),
    text_encoder=dict(_delete_=True, type='OpenCLIPTextEncoder', model_name='mmsamptx-tiny-clip',
                      templates=('{}',)))
