# CLIP-Guided SAM on camouflaged objects, semi-automatic (text-only) mode: COD10K + CAMO train, test
# COD10K (Table 2). Each image prompted with its own text (the COD10K class in its file name).
_base_ = [
    '../_base_/models/clip_guided_sam_vit_b.py', '../_base_/datasets/cod_authors.py',
    '../_base_/schedules/cgs_40e.py', '../_base_/default_runtime.py'
]
model = dict(class_names='CODDataset', text_key='class_name',
             train_cfg=dict(classes_per_image=1, target_classes=[1]),
             test_cfg=dict(target_classes=[1]))
default_hooks = dict(checkpoint=dict(save_best='mask256/MAE', rule='less'))
log_processor = dict(by_epoch=True)
randomness = dict(seed=42)
