# CLIP-Guided SAM's original launch script: AdamW, 5e-5 with weight decay 1e-3 for the adapters, the
# mask decoder and the prompt encoder; CLIP's visual attention at 1e-7 without weight decay; constant;
# 40 epochs of (image, class) pairs, batch 2 (1 per GPU on 2 GPUs), fp32, no clipping, seed 42.
_base_ = ['./authors_40e.py']
optim_wrapper = dict(
    optimizer=dict(lr=5e-5, weight_decay=1e-3),
    paramwise_cfg=dict(_delete_=True, custom_keys={
        'guide.visual': dict(lr_mult=0.002, decay_mult=0.0)}))  # 5e-5 x 0.002 = 1e-7
# The trainable prompt encoder has point embeddings a step never uses (negative points and box corners:
# only positive points here), so DDP must look for unused parameters, as the authors' launcher does.
find_unused_parameters = True
