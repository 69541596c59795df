# Baseline at the same data: SAM-PTx's spatial Parallel-Adapter beside every ViT-B MLP (r = 64) plus
# the fine-tuned mask decoder, one point prompt per class ('prompted'). No cache (adapted encoder).
_base_ = ['./decoder-ft_vit-b_fewshot16.py']
model = dict(
    backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter', bottleneck=64, scale=0.5)),
    embedding_cache=None)
