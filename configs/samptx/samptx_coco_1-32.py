# SAM-PTx on COCO 1/32 (UniMatch's split), otherwise configs/samptx/samptx_coco_1-512.py.
_base_ = ['./samptx_coco_1-512.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='coco/1_32')))
