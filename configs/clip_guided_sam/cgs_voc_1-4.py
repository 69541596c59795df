# CLIP-Guided SAM, semi-automatic, PASCAL VOC 1-4 (366 images, UniMatch's list), else cgs_voc_1-16.py.
# Paper (Table 5): 82.9.
_base_ = ['./cgs_voc_1-16.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='pascal/366')))
