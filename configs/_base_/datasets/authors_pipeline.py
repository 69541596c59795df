# The SAM-PTx authors' preprocessing and training augmentations (docs: samptx-authors.md §6.3, §6.4).
# authors_train_pipeline_tail is what goes between LoadAnnotations and PackSegInputs; a config that
# inherits this file takes the whole pipelines (defined at the end):
#   train_pipeline = {{_base_.authors_train_pipeline}}
#   test_pipeline = {{_base_.authors_test_pipeline}}
# (in the test pipeline the label is loaded after the resize: metrics read it at the original size).
#
# Mask values: the label map keeps every class; pixels that the affine warp or the cut-out empty get
# authors_fill_label (255, the ignore value). The class-prompted segmentor treats every pixel that is not
# the sample's class as a negative, ignore included (§6.6), so 255 plays the role of the authors' 0 in
# their binary mask. Label interpolation is nearest everywhere: the output holds only the input's
# label values and authors_fill_label.
#
# Known differences from the authors' torchvision/PIL code, all below a pixel or a rounding step:
# - translation: a float shift U(-5%, 5%) of the side (nearest sampling) for int(U(-0.05, 0.05) * 1024) px;
# - Gaussian blur: OpenCV kernel of size int(3.5 sigma) * 2 + 1 for PIL's box approximation of radius sigma;
# - brightness and contrast: ColorJitter multiplies (brightness) and blends with the grey mean (contrast),
#   as PIL's ImageEnhance; it applies them in random order, which gives the same result up to uint8 rounding;
# - cut-out: corner uniform in [0, 1024 - 65] for the authors' [0, 960] (their box at 960 is clipped).
authors_size = 1024  # SAM's input side: the image is squashed to it, aspect ratio not kept (§6.3)
authors_fill_label = 255  # label of warped-in and cut-out pixels: negative for every prompted class
authors_cutout_fill_rgb = (123, 116, 103)  # ImageNet mean in 0..255; RGB as albumentations sees it

authors_test_resize = dict(type='Resize', scale=(authors_size, authors_size), keep_ratio=False)

authors_train_pipeline_tail = [
    dict(type='Resize', scale=(authors_size, authors_size), keep_ratio=False),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomFlip', prob=0.5, direction='vertical'),
    # albumentations 2.0.8 through mmseg's Albu (img -> image in RGB, gt_seg_map -> mask), reseeded
    # per call from numpy so that runs are reproducible and data loader workers differ.
    # cv2 constants: INTER_NEAREST = 0, INTER_LINEAR = 1, BORDER_CONSTANT = 0.
    dict(
        type='SeededAlbu',
        transforms=[
            dict(type='RandomResizedCrop', size=(authors_size, authors_size), scale=(0.7, 1.0),
                 ratio=(0.75, 1.33), interpolation=1, mask_interpolation=0, p=0.5),
            dict(type='Affine', rotate=(-30, 30),
                 translate_percent=dict(x=(-0.05, 0.05), y=(-0.05, 0.05)),
                 scale=(0.8, 1.2), keep_ratio=True,  # one isotropic factor, as torchvision's affine
                 shear=dict(x=(-10, 10), y=(0, 0)),  # x-axis shear only
                 interpolation=0, mask_interpolation=0,  # torchvision's default: nearest for both
                 border_mode=0, fill=0, fill_mask=authors_fill_label, p=0.5),
            dict(type='ColorJitter', brightness=(0.6, 1.4), contrast=(0.6, 1.4),
                 saturation=(0.6, 1.4), hue=(-0.1, 0.1), p=0.7),
            dict(type='GaussianBlur', blur_limit=0, sigma_limit=(0.1, 1.5), p=0.2),
            # brightness and contrast factors U(0.8, 1.2), both applied (PIL ImageEnhance semantics)
            dict(type='ColorJitter', brightness=(0.8, 1.2), contrast=(0.8, 1.2), saturation=(1.0, 1.0),
                 hue=(0.0, 0.0), p=0.2),
            # one 65x65 box (the authors' 64-px PIL rectangle includes both ends)
            dict(type='CoarseDropout', num_holes_range=(1, 1), hole_height_range=(65, 65),
                 hole_width_range=(65, 65), fill=authors_cutout_fill_rgb,
                 fill_mask=authors_fill_label, p=0.3),
        ]),
]

# Whole pipelines for configs that inherit this file (mmengine's {{_base_.x}} can only stand for a
# whole value, so a child cannot splice the tail itself): train_pipeline = {{_base_.authors_train_pipeline}}.
# LoadAnnotations takes reduce_zero_label from the dataset; PackSegInputs keeps mmseg's meta keys
# (ClassPairDataset adds sample_class after packing).
authors_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    *authors_train_pipeline_tail,
    dict(type='PackSegInputs'),
]
authors_test_pipeline = [
    dict(type='LoadImageFromFile'),
    authors_test_resize,
    dict(type='LoadAnnotations'),  # after the resize: metrics read the label at the original size
    dict(type='PackSegInputs'),
]
