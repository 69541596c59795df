# PTSAM, decoder prompt tuning (tiny): 8 learnable decoder prompt tokens, everything else frozen;
# trained and tested without any user prompt. Trainable: 8 x 256 = 2,048.
_base_ = ['./_base_microscopy.py']
model = dict(
    decode_head=dict(
        frozen_decoder=True,
        prompt_cfg=dict(type='DecoderPromptTokens', num_tokens=8),
        # A tiny random SAM collapses to all-background under SAM's focal term; Dice alone trains it.
        loss_weights=dict(mask=0.0, dice=1.0, iou=0.0)),
    train_cfg=dict(classes_per_image=1, num_points=0, target_classes=[1]),
    test_cfg=dict(mode='auto', target_classes=[1]),
    embedding_cache=dict(type='memory'))
optim_wrapper = dict(optimizer=dict(lr=0.3, weight_decay=0.0))  # for prompt tokens of std 1
train_cfg = dict(max_iters=200, val_interval=200)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=0, end=200)]
