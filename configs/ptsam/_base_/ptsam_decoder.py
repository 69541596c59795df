# PTSAM (arXiv 2504.16739), mask-decoder prompt tuning on SAM ViT-B, prompt-free: 8 learnable prompt
# tokens join SAM's mask-decoder sparse prompts (8 x 256 = 2,048 trainable parameters); all of SAM ViT-B
# stays frozen. Trained without any point, tested without any prompt ('auto'). The frozen, unadapted
# encoder's embeddings are cached. Method only: a config adds a dataset base (which sets no model key)
# and the model's class_names; configs/ptsam/<dataset>/ptsam-decoder_vit-b_<dataset>-16shot.py.
_base_ = [
    '../../_base_/models/sam_vit_b.py', './ptsam_schedule.py', '../../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(adapter_cfg=None),
    decode_head=dict(
        frozen_decoder=True,
        prompt_cfg=dict(type='DecoderPromptTokens', num_tokens=8)),  # n_md = 8 tokens of 256
    text_encoder=None,
    train_cfg=dict(_delete_=True, classes_per_image=1, num_points=0, target_classes=[1]),
    test_cfg=dict(_delete_=True, mode='auto', target_classes=[1]),
    embedding_cache=dict(type='memory'))
# Prompt tokens (std 1, like SAM's point embeddings) take a larger step than weights.
optim_wrapper = dict(optimizer=dict(lr=1e-2, weight_decay=0.0))
