# Few-shot binary segmentation (microscopy / medical) at SAM's input size: 16 training shots,
# every other image held out; foreground Dice / IoU (BinaryDiceMetric). Pipelines, loaders, metric:
# configs/_base_/datasets/ptsam_binary.py.
# Prepare: docs/datasets.md, "Few-shot binary segmentation" (default: DSB 2018 nuclei, folder layout).
_base_ = ['../../_base_/datasets/ptsam_binary.py']
dataset_type = 'FewShotBinaryDataset'
data_root = 'data/dsb2018_binary'
# The base's dataset dicts are not re-evaluated with these variables: set their fields here.
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(
    dataset=dict(type=dataset_type, data_root=data_root, num_shots={{_base_.num_shots}}, seed=0))
test_dataloader = val_dataloader
