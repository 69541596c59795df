# EMParticles, read here as EMPS (Yildirim & Cole 2021, github.com/by256/emps): particles in electron
# micrographs. Official lists train.csv (366) / test.csv (99); shots from 'train', test set 'test'.
# Prepare: docs/ptsam.md, "Datasets" (tools/dataset_converters/em_particles.py download / convert / verify,
# then tools/dataset_converters/ptsam_few_shot.py for the N-shot list). Layout, input size, metric:
# ./ptsam_binary.py.
_base_ = ['./ptsam_binary.py']
dataset_type = 'EMParticlesDataset'
data_root = 'data/ptsam/em_particles'
shot_seed = 0  # which N-shot list: splits/train_<num_shots>shot_seed<shot_seed>.txt
test_split = 'test'
# The base's dataset dicts are not re-evaluated with these variables: set their fields here.
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, seed=shot_seed))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root, split=test_split))
test_dataloader = val_dataloader
