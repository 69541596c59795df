# Demo SAM-PTx with text adapters in the last 2 of the tiny encoder's 4 blocks only: the first
# two blocks run once per image and are shared by every class (the cheap text-only variant,
# as k = 4 of SAM ViT-B's 12 blocks); compare with samptx_demo.py (text in every block).
_base_ = ['./samptx_demo.py']
model = dict(backbone=dict(adapter_cfg=dict(blocks=[-2, -1]), attn_adapter_cfg=dict(blocks=[-2, -1])))
