# OrganoidBasic, 16 shots, SAM ViT-B: PTSAM, mask-decoder prompt tuning (2,048 trainable).
# Method: ../_base_/ptsam_decoder.py; data: ../../_base_/datasets/ptsam_organoid_basic.py.
# The paper's number for this cell: docs/ptsam_baselines.md (model zoo).
_base_ = ['../_base_/ptsam_decoder.py', '../../_base_/datasets/ptsam_organoid_basic.py']
model = dict(class_names='OrganoidBasicDataset')  # ('background', 'organoid')
