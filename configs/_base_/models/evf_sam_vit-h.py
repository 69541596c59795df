# EVF-SAM (arXiv 2406.20076): SAM ViT-H prompted by BEiT-3-L's early fusion of image and expression
# (docs/evf_sam.md). Training starts from the official SAM ViT-H and the BEiT-3-L (MLM) init files;
# the released checkpoints load instead through model.checkpoint (configs/evf_sam/*_released_*).
sam_checkpoint = 'https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth'
beit3_checkpoint = 'https://github.com/addf400/files/releases/download/beit3/beit3_large_patch16_224.pth'
# BEiT-3's sentencepiece model (sha256 6f5e2fef..., the same file as the releases'
# sentencepiece.bpe.model); downloaded into the torch hub cache on first use.
beit3_spm = 'https://github.com/addf400/files/releases/download/beit3/beit3.spm'
model = dict(
    type='EVFSAM',
    # Images stay uint8 at their original size (a list): the model makes both views itself.
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    visual_model=dict(
        type='EVFVisualSAM',
        arch='vit_h',
        img_size=1024,                # SAM's view: long side 1024, zero-padded
        encoder_cfg=dict(fused_attn=True, autocast_dtype='auto'),  # frozen, under no_grad
        train_decoder=True,           # EVF-SAM trains SAM's mask decoder (4,058,340)
        train_no_mask_embed=True,     # and the dense no-mask embedding (256)
        multimask='single',           # evf-sam / evf-sam-multitask: mask token 0
        checkpoint=sam_checkpoint),
    fusion_encoder=dict(
        type='BEiT3',
        arch='large',                 # 24 layers, 1024 wide: 672,702,464 parameters
        img_size=224,                 # BEiT-3's view: 224² bicubic, (x - 0.5) / 0.5
        with_cp=False,                # activation checkpointing per layer (memory for compute)
        init_cfg=dict(type='Pretrained', checkpoint=beit3_checkpoint)),
    projector=dict(type='EVFPromptProjector'),  # Linear(1024, 1024), ReLU, Linear(1024, 256)
    tokenizer=dict(model_file=beit3_spm, added_tokens=('[semantic]',)),  # [semantic] = 64002
    checkpoint=None,                  # a released EVF-SAM file replaces all of the above weights
    test_cfg=dict(lowercase=True,     # the authors' evaluation: sent.strip().lower()
                  chunk=32),          # expressions per BEiT-3 / decoder pass
    # LISA's defaults, on which EVF-SAM's unreleased training builds (the paper's are unknown).
    loss_weights=dict(bce=2.0, dice=0.5))
