# Camouflaged objects under the authors' protocol (docs/datasets.md): SINet-V2's combined layout,
#   data/Combined_Camouflaged/TrainDataset/{Imgs,GT}            COD10K train + CAMO train (4,040)
#   data/Combined_Camouflaged/TestDataset/{COD10K,CAMO,CHAMELEON}/{Imgs,GT}
# one sample per image (the object, class 1), prompted with the image's own text (the COD10K class
# in its file name, CamelCase as written; 'Camouflaged object' / 'Camouflaged animal' otherwise),
# squashed to 1024²; camouflaged training data gets no augmentation (the authors').
dataset_type = 'CODDataset'
data_root = 'data/Combined_Camouflaged'
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor',
             'flip', 'flip_direction', 'reduce_zero_label', 'class_name')
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=False),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type, data_root=data_root, text_rule='authors',
        data_prefix=dict(img_path='TrainDataset/Imgs', seg_map_path='TrainDataset/GT'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type, data_root=data_root, text_rule='authors',
        data_prefix=dict(img_path='TestDataset/COD10K/Imgs', seg_map_path='TestDataset/COD10K/GT'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# S-alpha, E-phi, weighted F and MAE on the sigmoid probability map (pysodmetrics), and the
# authors' MAE at 256².
val_evaluator = [dict(type='CODMetric'), dict(type='CODMetric', size='mask', prefix='mask256')]
test_evaluator = val_evaluator
