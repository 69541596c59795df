# Demo SAM-PTx as its authors built it, at the tiny architecture (width 64, 4 blocks): in every block
# a regular adapter beside attention (inner skip: a <- 1.5 a + 0.5 A(a)) and a Parallel-Text adapter
# beside the MLP (the text projected to the width with GELU, added to the tokens before the
# bottleneck), r = 64 / 4 = 16, scale 0.5, PyTorch's default init; fed with a (tiny, random) CLIP
# text tower, bare class names, L2-normalised. The decoder trains with the authors' BCE + Dice +
# soft IoU at the mask size. samptx-zero-init_demo.py is this library's zero-initialised variant.
_base_ = ['./_base_demo.py']
model = dict(
    backbone=dict(
        adapter_cfg=dict(_delete_=True, type='ParallelTextAdapter', text_dims=64,  # tiny CLIP width
                         ratio=0.25, scale=0.5, zero_init=False, text_input='tokens'),
        attn_adapter_cfg=dict(type='AttentionAdapter', ratio=0.25, scale=0.5, inner_skip=True)),
    text_encoder=dict(_delete_=True, type='OpenCLIPTextEncoder', model_name='mmsamptx-tiny-clip',
                      templates=('{}',), ensemble_normalize=False, normalize=True))
