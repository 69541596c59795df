# SAM-PTx on ADE20K 1/32 (UniMatch V2's split), otherwise configs/samptx_ade20k_1-64.py.
_base_ = ['../samptx_ade20k_1-64.py']
train_dataloader = dict(dataset=dict(dataset=dict(published_split='ade20k/1_32')))
