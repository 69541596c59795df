# Baseline at the same data: a spatial Parallel-Adapter beside every ViT-B MLP (r = 64, zero-initialised:
# this library's form, the untrained encoder is SAM) plus the fine-tuned mask decoder, one point prompt
# per class ('prompted'). No cache (adapted encoder). SU-SAM's own form: ParallelAdapter's defaults plus
# attn_adapter_cfg=dict(type='AttentionAdapter').
_base_ = ['./decoder-ft_vit-b_fewshot16.py']
model = dict(
    backbone=dict(adapter_cfg=dict(_delete_=True, type='ParallelAdapter',
                                   bottleneck=64,    # adapter width r
                                   scale=0.5,        # fixed factor on the adapter branch
                                   zero_init=True)),  # up-projection starts at zero
    embedding_cache=None)
