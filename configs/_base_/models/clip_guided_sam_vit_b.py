# CLIP-Guided SAM (arXiv 2605.24807) as its authors ran it (docs/clip_guided_sam.md; the method notes'
# sections in brackets): SAM ViT-B with, in every block, a regular adapter beside attention (inner
# skip) and a semantic adapter beside the MLP fed with CLIPSurgery's text t, vision V and similarity
# s (F = LN2(x) + interp(W_v (V + s)) + GELU(W_t t), r = 192, scale 0.5, default init) [3.2-3.4];
# CLIPSurgery ViT-B/16 at 512² (surgery path in the last 6 blocks, token-axis normalisation, the
# similarity map thresholded at 0.8 for the points and the dense prompt) [2]; semi-automatic mode:
# 5 points from the similarity region and the dense prompt, at training and test [5]; trained: the
# adapters, the mask decoder, the prompt encoder and CLIP's visual attention (12 blocks) [4];
# BCE + Dice + soft IoU at 256² [6]. fp32.
_base_ = ['./samptx_vit_b.py']
model = dict(
    backbone=dict(
        adapter_cfg=dict(
            _delete_=True,
            type='SemanticAdapter',
            blocks=None,            # S = 12: every block (Table 7 varies it)
            text_dims=512, vision_dims=512,  # CLIP ViT-B/16's joint width
            use_text=True, use_vision=True, use_similarity=True,  # Table 6 switches
            ratio=0.25, scale=0.5, zero_init=False)),
    decode_head=dict(frozen_prompt_encoder=False),  # the whole prompt encoder trains (--finetune_PE)
    text_encoder=None,              # the guide holds the text tower
    guide=dict(
        type='CLIPSurgeryGuide',
        model_name='ViT-B-16-quickgelu', pretrained='openai',
        clip_size=512,              # the SAM-normalised 1024² image resized to 512²
        surgery_blocks=6,           # value-value attention path in the last 6 blocks (0: plain CLIP)
        norm='tokens',              # the code's normalisation ('channels': the paper's cosine)
        threshold=0.8,
        finetune_attn_blocks=12),   # CLIP's visual attention in the last 12 blocks trains (1e-7)
    train_cfg=dict(
        _delete_=True, num_points=5, background='negative',
        point_source='similarity',  # semi-automatic: the points the test will see
        point_grid='input',         # drawn from the 1024² region S > 0.8
        mask_prompt=True),
    test_cfg=dict(
        _delete_=True, mode='prompted',  # classes present in the image (image-level prompts)
        num_points=5, point_source='similarity', point_grid='input', mask_prompt=True,
        class_chunk=16))
