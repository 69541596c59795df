# Baseline: SAM ViT-B's mask decoder fine-tuned prompt-free (4,058,340 trainable), SAMed's recipe without
# its LoRA (arXiv 2304.13785: no prompt in training or test, the decoder's own output tokens with SAM's
# no-mask embedding; 0.2 x cross-entropy + 0.8 x Dice on the low-resolution logits; AdamW lr 0.005,
# weight decay 0.1, 250 warm-up iterations, poly 0.9 decay). Tested prompt-free ('auto'), as PTSAM.
# The encoder is frozen and unadapted, so its embeddings are cached (./ptsam_decoder.py's cache).
# Departures from SAMed: docs/ptsam_baselines.md.
_base_ = ['./ptsam_decoder.py']
model = dict(
    decode_head=dict(
        frozen_decoder=False,
        prompt_cfg=None,
        mask_loss='bce',  # SAMed's 2-way softmax CE on one foreground logit
        loss_weights=dict(mask=0.2, dice=0.8, iou=0.0),  # SAMed's dice_param = 0.8
        loss_size='mask'))  # SAMed's losses on the decoder's low-resolution output
optim_wrapper = dict(optimizer=dict(lr=0.005, betas=(0.9, 0.999), weight_decay=0.1),
                     clip_grad=None)  # SAMed clips no gradient
param_scheduler = [
    dict(type='LinearLR', start_factor=1.0 / 250, by_epoch=False, begin=0, end=250),  # SAMed --warmup
    dict(type='PolyLR', eta_min=0.0, power=0.9, by_epoch=False, begin=250, end=2000),
]
