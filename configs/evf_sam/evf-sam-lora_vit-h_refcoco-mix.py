# EVF-SAM, parameter-efficient: LoRA on BEiT-3-L (peft) instead of training all 672.7 M of its
# parameters; the projector, SAM's mask decoder and no_mask_embed train as in the full recipe.
# Not in the paper (no published number): a variant users ask for (hustvl/EVF-SAM#20, #47, #51).
_base_ = ['./evf-sam_vit-h_refcoco-mix.py']
model = dict(
    fusion_encoder=dict(
        lora_cfg=dict(
            r=16,                     # rank of each update B A
            alpha=32,                 # scale alpha / r = 2
            # every attention projection of every layer, in both experts (vision A, language B):
            # 24 layers x 2 experts x 4 projections x r (1024 + 1024) = 6,291,456 parameters
            target_modules=('q_proj', 'k_proj', 'v_proj', 'out_proj'),
            experts=('A', 'B'))))
