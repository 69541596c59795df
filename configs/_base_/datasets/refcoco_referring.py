# RefCOCO / RefCOCO+ / RefCOCOg in the refer layout (docs/datasets.md), one sample per image with
# its expressions (EVF-SAM's and LISA's unit). Training: the train splits of the three datasets
# (unc, unc, umd), up to 3 expressions per image and step; testing: every sentence of a split.
data_root = 'data/refer'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadReferringMasks', max_expressions=3),  # drawn without replacement
    dict(type='PackReferringInputs'),  # no augmentation (left/right words), as the authors
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadReferringMasks'),   # every sentence, each with its ref's mask
    dict(type='PackReferringInputs'),
]
# images under <data_root>/images/train2014 (RefCOCODataset's default data_prefix)
refer = dict(type='RefCOCODataset', data_root=data_root, group_by='image')
train_dataloader = dict(
    batch_size=2,                      # images per GPU (LISA's micro-batch), each with <= 3 expressions
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[
        dict(refer, dataset='refcoco', split='train', pipeline=train_pipeline),
        dict(refer, dataset='refcoco+', split='train', pipeline=train_pipeline),
        dict(refer, dataset='refcocog', split='train', pipeline=train_pipeline),
    ]))
val_dataloader = dict(
    batch_size=1,                      # one image with all its sentences per step (eval.py)
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(refer, dataset='refcoco', split='val', pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='ReferringMetric')  # cIoU, gIoU (percent), num_expressions
test_evaluator = val_evaluator
