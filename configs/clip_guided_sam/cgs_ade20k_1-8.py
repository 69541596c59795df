# CLIP-Guided SAM, semi-automatic, ADE20K 1/8 (the published list). Paper (Table 5): 57.7.
_base_ = ['./cgs_ade20k_1-64.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='ade20k/1_8')))
