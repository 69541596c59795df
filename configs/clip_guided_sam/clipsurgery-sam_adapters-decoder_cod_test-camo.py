# Test configs/clip_guided_sam/clipsurgery-sam_adapters-decoder_cod.py's checkpoint on CAMO (SINet-V2's TestDataset).
# Paper: CAMO MAE 0.063.
_base_ = ['./clipsurgery-sam_adapters-decoder_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CAMO/Imgs', seg_map_path='TestDataset/CAMO/GT')))
