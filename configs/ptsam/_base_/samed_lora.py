# SAMed (arXiv 2304.13785): LoRA of rank 4 on the query and value parts of the fused qkv projection in
# every one of ViT-B's 12 blocks (12 x 2 x 2 x 768 x 4 = 147,456, B = 0 at the start), plus the
# prompt-free fine-tuned mask decoder (4,058,340). Trainable: 4,205,796. Same recipe as
# ./decoder_ft_samed.py; no embedding cache (the adapted encoder changes in training).
_base_ = ['./decoder_ft_samed.py']
model = dict(
    backbone=dict(qkv_adapter_cfg=dict(type='LoRAQKV',
                                       rank=4,              # SAMed's --rank default
                                       targets=('q', 'v'),  # SAMed's linear_a_q/_b_q, _a_v/_b_v
                                       alpha=None)),        # no factor (alpha = rank)
    embedding_cache=None)
