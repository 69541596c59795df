# Demo SAM-PTx: Parallel-Text adapters in every block, fed with a (tiny, random) CLIP text tower.
# This library's zero-initialised design (text projected into the bottleneck, the untrained
# adapter is SAM); the authors' form is ParallelTextAdapter's defaults plus an AttentionAdapter.
_base_ = ['./_base_demo.py']
model = dict(
    backbone=dict(adapter_cfg=dict(
        _delete_=True, type='ParallelTextAdapter',
        text_dims=64,              # the tiny CLIP's text width
        bottleneck=16,             # adapter width r
        scale=1.0,                 # fixed factor on the adapter branch
        zero_init=True,            # up-projection starts at zero
        text_input='bottleneck')),  # text projected to r, added to down(h)
    text_encoder=dict(_delete_=True, type='OpenCLIPTextEncoder', model_name='mmsamptx-tiny-clip',
                      templates=('{}',)))
