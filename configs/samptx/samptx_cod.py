# SAM-PTx on camouflaged objects (COD10K + CAMO train; test COD10K here, CAMO and CHAMELEON in
# samptx_cod_test-camo.py / samptx_cod_test-chameleon.py), as its authors ran it. Paper (CGS Table 2,
# COD10K): S 0.915, E 0.906, weighted F 0.813, MAE 0.020. The best checkpoint has the lowest MAE
# on the validation set (the authors: mean MAE over the three test sets).
_base_ = [
    '../_base_/models/samptx_vit_b.py', '../_base_/datasets/cod_authors.py',
    '../_base_/schedules/authors_40e.py', '../_base_/default_runtime.py'
]
model = dict(
    class_names='CODDataset',   # ('background', 'camouflaged object')
    text_key='class_name',      # each image's own text, from its file name
    train_cfg=dict(classes_per_image=1, target_classes=[1]),
    test_cfg=dict(target_classes=[1]))
default_hooks = dict(checkpoint=dict(save_best='mask256/MAE', rule='less'))
# Epoch-based logging; the authors' seed (42 for python, numpy and torch, the same on every rank).
log_processor = dict(by_epoch=True)
randomness = dict(seed=42)
