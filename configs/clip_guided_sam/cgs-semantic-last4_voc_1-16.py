# Table 7: semantic adapters in the last 4 blocks only, the plain MLP-side adapter in the others
# (regular adapters beside attention everywhere), CLIP attention in 12 blocks, VOC 1/16. Paper: 78.2.
_base_ = ['./cgs_voc_1-16.py']
model = dict(backbone=dict(adapter_cfg=[
    dict(type='ParallelAdapter', blocks=list(range(0, 12 - 4)), ratio=0.25, scale=0.5),
    dict(type='SemanticAdapter', blocks=list(range(12 - 4, 12)), text_dims=512, vision_dims=512)]))
