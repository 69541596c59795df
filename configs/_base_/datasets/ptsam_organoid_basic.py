# OrganoidBasic (OrgaSegment, Lefferts et al. 2024; Zenodo 10278229): intestinal organoids in
# bright-field images. Official folders train / val / eval; PTSAM's shots come from 'train', the test
# set is 'eval'.
# Prepare: docs/ptsam.md, "Datasets" (tools/dataset_converters/organoid_basic.py download / convert / verify,
# then tools/dataset_converters/ptsam_few_shot.py for the N-shot list). Layout, input size, metric:
# ./ptsam_binary.py.
_base_ = ['./ptsam_binary.py']
dataset_type = 'OrganoidBasicDataset'
data_root = 'data/ptsam/organoid_basic'
shot_seed = 0  # which N-shot list: splits/train_<num_shots>shot_seed<shot_seed>.txt
test_split = 'eval'
# The base's dataset dicts are not re-evaluated with these variables: set their fields here.
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, seed=shot_seed))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split=test_split))
test_dataloader = val_dataloader
