# Test configs/clip_guided_sam/cgs_cod.py's checkpoint (text-only) on CAMO (SINet-V2's TestDataset/CAMO).
_base_ = ['./cgs_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CAMO/Imgs', seg_map_path='TestDataset/CAMO/GT')))
