# Test configs/clip_guided_sam/clipsurgery-sam_decoder_cod.py's checkpoint on CHAMELEON (SINet-V2's TestDataset).
# Paper: CHAMELEON MAE 0.046.
_base_ = ['./clipsurgery-sam_decoder_cod.py']
test_dataloader = dict(dataset=dict(
    data_prefix=dict(img_path='TestDataset/CHAMELEON/Imgs', seg_map_path='TestDataset/CHAMELEON/GT')))
