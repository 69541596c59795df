# Test configs/samptx/samptx_cod.py's checkpoint on CAMO (SINet-V2's TestDataset/CAMO).
_base_ = ['./samptx_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CAMO/Imgs', seg_map_path='TestDataset/CAMO/GT')))
