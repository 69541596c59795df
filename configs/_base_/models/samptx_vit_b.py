# SAM-PTx as its authors built it (docs/samptx.md; the method notes' sections in brackets):
# SAM ViT-B with, in every block, a regular adapter beside attention (inner skip: a <- 1.5 a +
# 0.5 A(a), [3.2]) and a Parallel-Text adapter beside the MLP (the frozen CLIP text embedding
# projected 512 -> 768 with GELU and added to the normalised tokens before the bottleneck,
# r = 0.25 * 768 = 192, scale 0.5, PyTorch's default init, [3.4]); SAM's mask decoder trained
# with BCE + Dice + soft IoU at 256² [6.5]; 5 positive points per (image, class) pair, at train
# and test [6.2]; every pixel not of the class is a negative [6.6]. fp32 throughout, as the
# authors ran it (set backbone/decode_head autocast_dtype='auto' for our bf16 option).
_base_ = ['./sam_vit_b.py']
model = dict(
    backbone=dict(
        autocast_dtype=None,
        adapter_cfg=dict(
            _delete_=True,
            type='ParallelTextAdapter',
            blocks=None,           # every block
            text_dims=512,         # CLIP ViT-B/16 text embedding width
            ratio=0.25,            # bottleneck r = int(0.25 * 768) = 192
            scale=0.5,             # fixed branch scale
            zero_init=False,       # PyTorch's default Linear init (our zero_init=True: identity at init)
            text_input='tokens'),  # GELU(W_t t + b_t) added to LN2(x) before fc1
        attn_adapter_cfg=dict(
            type='AttentionAdapter', blocks=None, ratio=0.25, scale=0.5, zero_init=False,
            inner_skip=True)),     # the block adds 0.5 * (a + A(a)): attention x1.5 at init
    decode_head=dict(
        multimask_output=False,    # mask token 0 only
        mask_loss='bce',
        loss_weights=dict(mask=1.0, dice=1.0, iou=0.0, soft_iou=1.0),  # BCE + Dice + soft IoU, 1:1:1
        dice_eps=1e-6,
        loss_size='mask',          # at the decoder's 256² output, targets nearest-resized
        autocast_dtype=None),
    # OpenAI CLIP ViT-B/16 in fp32; the bare class name (no template), L2-normalised, no
    # empty-prompt subtraction (subtract_redundant=True is the CLIP Surgery option, [5.4]).
    text_encoder=dict(
        _delete_=True, type='OpenCLIPTextEncoder', model_name='ViT-B-16-quickgelu',
        pretrained='openai', templates=('{}',), ensemble_normalize=False,
        subtract_redundant=False, normalize=True),
    train_cfg=dict(
        _delete_=True,
        num_points=5,              # positive GT points per pair, drawn with replacement
        point_grid='mask',         # drawn on the 256² target, upsampled to 1024²
        background='negative',     # every pixel not of the class is 0 (ignore labels included)
        negatives_per_image=0),
    test_cfg=dict(
        _delete_=True,
        mode='prompted',           # class name + 5 GT points, as evaluated in the paper
        num_points=5,
        point_grid='mask',
        class_chunk=16))
