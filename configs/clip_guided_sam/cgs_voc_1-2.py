# CLIP-Guided SAM, semi-automatic, PASCAL VOC 1-2 (732 images, UniMatch's list), else cgs_voc_1-16.py.
# Paper (Table 5): 83.9.
_base_ = ['./cgs_voc_1-16.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='pascal/732')))
