# Test configs/clip_guided_sam/clipsurgery-sam_adapters-decoder_cod.py's checkpoint on CHAMELEON (SINet-V2's TestDataset).
# Paper: CHAMELEON MAE 0.02.
_base_ = ['./clipsurgery-sam_adapters-decoder_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CHAMELEON/Imgs', seg_map_path='TestDataset/CHAMELEON/GT')))
