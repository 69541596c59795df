# SAM-PTx on COCO 1/256 (UniMatch's split), otherwise configs/samptx/samptx_coco_1-512.py.
_base_ = ['./samptx_coco_1-512.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='coco/1_256')))
