# PTSAM (arXiv 2504.16739), mask-decoder prompt tuning: 8 learnable prompt tokens (8 x 256 = 2,048
# trainable parameters) join the decoder's sparse prompts; all of SAM ViT-B stays frozen. Trained on
# 16 images without any point, tested without any prompt ('auto'). The frozen, unadapted encoder's
# embeddings are cached (memory; use type='disk', dir=... to keep them across runs).
_base_ = [
    '../_base_/models/sam_vit_b.py', './_base_/fewshot16_binary.py',
    './_base_/ptsam_schedule.py', '../_base_/default_runtime.py'
]
model = dict(
    class_names='FewShotBinaryDataset',  # ('background', 'foreground')
    backbone=dict(adapter_cfg=None),
    decode_head=dict(
        frozen_decoder=True,
        prompt_cfg=dict(type='DecoderPromptTokens', num_tokens=8)),
    text_encoder=None,
    train_cfg=dict(_delete_=True, classes_per_image=1, num_points=0, target_classes=[1]),
    test_cfg=dict(_delete_=True, mode='auto', target_classes=[1]),
    embedding_cache=dict(type='memory'))
# Prompt tokens (std 1, like SAM's point embeddings) take a larger step than weights.
optim_wrapper = dict(optimizer=dict(lr=1e-2, weight_decay=0.0))
