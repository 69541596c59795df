# Kvasir-SEG (Jha et al. 2020): colonoscopy polyps. The dataset authors' 880 / 120 train / val lists;
# shots from 'train', test set 'val'.
# Prepare: docs/ptsam.md, "Datasets" (tools/dataset_converters/kvasir_seg.py download / convert / verify,
# then tools/dataset_converters/ptsam_few_shot.py for the N-shot list). Layout, input size, metric:
# ./ptsam_binary.py.
_base_ = ['./ptsam_binary.py']
dataset_type = 'KvasirSEGDataset'
data_root = 'data/ptsam/kvasir_seg'
shot_seed = 0  # which N-shot list: splits/train_<num_shots>shot_seed<shot_seed>.txt
test_split = 'val'
# The base's dataset dicts are not re-evaluated with these variables: set their fields here.
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, seed=shot_seed))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split=test_split))
test_dataloader = val_dataloader
