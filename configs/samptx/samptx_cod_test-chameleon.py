# Test configs/samptx/samptx_cod.py's checkpoint on CHAMELEON (SINet-V2's TestDataset/CHAMELEON).
_base_ = ['./samptx_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CHAMELEON/Imgs', seg_map_path='TestDataset/CHAMELEON/GT')))
