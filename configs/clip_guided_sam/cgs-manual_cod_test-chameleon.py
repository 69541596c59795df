# Test configs/clip_guided_sam/cgs-manual_cod.py's checkpoint (manual) on CHAMELEON (SINet-V2's TestDataset/CHAMELEON).
_base_ = ['./cgs-manual_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CHAMELEON/Imgs', seg_map_path='TestDataset/CHAMELEON/GT')))
