# CLIP-Guided SAM, semi-automatic, COCO 1/256 (the published list). Paper (Table 5): 63.2.
_base_ = ['./cgs_coco_1-512.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='coco/1_256')))
