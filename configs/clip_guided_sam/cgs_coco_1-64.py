# CLIP-Guided SAM, semi-automatic, COCO 1/64 (the published list). Paper (Table 5): 67.7.
_base_ = ['./cgs_coco_1-512.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='coco/1_64')))
