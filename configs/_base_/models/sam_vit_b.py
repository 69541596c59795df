# SAM ViT-B as a class-prompted segmentor with this library's defaults (focal + dice + IoU-MSE at the
# input size, K = 4 classes per image, 1 point, bf16 where native): the base of the PTSAM configs.
# The SAM-PTx paper configs use samptx_vit_b.py, which restates the authors' choices on top of it.
sam_img_size = 1024  # SAM's input side
sam_checkpoint = 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth'
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],  # SAM's pixel mean / std, RGB
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(sam_img_size, sam_img_size),
    test_cfg=dict(size=(sam_img_size, sam_img_size)))
model = dict(
    type='ClassPromptedSAM',
    data_preprocessor=data_preprocessor,
    class_names='ADE20KSplitDataset',  # the dataset's own class list, in label order
    backbone=dict(
        type='SAMImageEncoder',
        arch='vit_b',
        img_size=sam_img_size,
        frozen=True,
        # Fast paths (docs/benchmarks.md): attention through SDPA with the rel-pos bias as
        # extra head dims (True; 'global' is faster on CPUs), the frozen trunk in bf16 where
        # the device computes it natively ('auto'; None keeps fp32), and activation
        # checkpointing (True, or a list of block indices) when memory is short.
        fused_attn=True,
        autocast_dtype='auto',
        with_cp=False,
        adapter_cfg=dict(
            type='ParallelTextAdapter',
            blocks=None,      # None: every block; or a list of block indices
            text_dims=512,    # CLIP ViT-B/16 text embedding width
            bottleneck=64,    # adapter width r
            scale=0.5,        # fixed factor on the adapter branch
            zero_init=True,   # the up projection starts at 0: SAM exactly at init
            text_input='bottleneck'),  # text projected linearly into the bottleneck
        checkpoint=sam_checkpoint),
    neck=dict(type='SAMNeck', in_channels=768, out_channels=256, checkpoint=sam_checkpoint),
    decode_head=dict(
        type='SAMPromptableHead',
        image_size=sam_img_size,
        multimask_output=False,
        frozen_prompt_encoder=True,
        frozen_decoder=False,  # the mask decoder is fine-tuned, as in the decoder-only baseline
        mask_loss='focal',
        loss_weights=dict(mask=20.0, dice=1.0, iou=1.0),  # SAM's 20:1 focal:dice, plus IoU MSE
        # Losses at the input resolution ('mask': at the decoder's 256² output, targets sampled
        # down; 16x fewer loss pixels, the cheaper step when the encoder is cached).
        loss_size='input',
        # The trainable decoder under bf16 autocast where native (weights, outputs and losses
        # stay float32; no gradient scaler). None keeps it float32.
        autocast_dtype='auto',
        checkpoint=sam_checkpoint),
    text_encoder=dict(
        type='OpenCLIPTextEncoder', model_name='ViT-B-16-quickgelu', pretrained='openai'),
    train_cfg=dict(
        classes_per_image=4,  # K classes of each image become (image, class) samples
        num_points=1,         # N positive points sampled from each class mask
        negatives_per_image=0),  # absent classes prompted by name with an empty target
    test_cfg=dict(
        mode='prompted',      # 'prompted': class + points from the GT; 'text': names only
        num_points=1,
        class_chunk=16),      # classes per encoder/decoder batch at test time
    seed=0)
