"""PTSAM's registered datasets read the converted official splits and the N-shot lists.

Datasets are built with ``serialize_data=False``: mmengine's serialisation runs
a full ``gc.collect`` (about 1 s each with torch loaded) that tells nothing here.

Full-size counts the sources publish (asserted as constants; the miniatures
hold a few images per split): EMParticles/EMPS train 366, test 99 (the
repository's train.csv / test.csv, 465 images); Kvasir-SEG train 880, val 120
(its authors' lists, 1,000 images). LIVECell's COCO files and OrganoidBasic's
folders are their own reference: convert takes every image they list, and no
count is asserted beyond them (docs/ptsam.md).
"""
import os.path as osp

import numpy as np
import pytest
from mmengine import Config
from mmseg.registry import DATASETS

from mmsamptx.datasets import (EMParticlesDataset, KvasirSEGDataset,
                               LIVECellDataset, OrganoidBasicDataset)
from mmsamptx.datasets.ptsam_binary import make_shots, shots_file, split_ids
from mmsamptx.datasets.utils import read_split_file, seeded_subset

from test_datasets.ptsam_miniatures import COUNTS, build_converted

CLASSES = dict(organoid_basic=OrganoidBasicDataset,
               em_particles=EMParticlesDataset, livecell=LIVECellDataset,
               kvasir_seg=KvasirSEGDataset)
FOREGROUND = dict(organoid_basic='organoid', em_particles='particle',
                  livecell='cell', kvasir_seg='polyp')
CONFIG = 'configs/_base_/datasets/ptsam_{}.py'
ROOT = osp.join(osp.dirname(__file__), '..', '..')


@pytest.fixture(scope='module')
def data_roots(tmp_path_factory):
    base = tmp_path_factory.mktemp('ptsam')
    return {name: build_converted(name, str(base / name), num_shots=2)
            for name in CLASSES}


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_official_splits_read_with_their_counts(name, data_roots):
    cls = CLASSES[name]
    assert tuple(cls.SPLITS) == tuple(COUNTS[name])
    for split, n in COUNTS[name].items():
        ds = cls(data_root=data_roots[name], split=split, pipeline=[],
                 serialize_data=False)
        assert len(ds) == n
        ids = [ds.get_data_info(i)['sample_id'] for i in range(len(ds))]
        assert ids == sorted(ids)
        info = ds.get_data_info(0)
        assert info['img_path'].endswith(cls.IMG_SUFFIX)
        assert info['seg_map_path'] == osp.join(
            data_roots[name], split, 'masks', ids[0] + '.png')
        assert info['class_name'] == FOREGROUND[name]
    assert ds.metainfo['classes'] == ('background', FOREGROUND[name])


@pytest.mark.parametrize('name', sorted(CLASSES))
def test_base_config_builds_shots_and_test_split(name, data_roots):
    cfg = Config.fromfile(osp.join(ROOT, CONFIG.format(name)))
    assert cfg.dataset_type == CLASSES[name].__name__
    assert cfg.test_split == CLASSES[name].TEST_SPLIT
    assert cfg.num_shots == 16 and cfg.shot_seed == 0
    train_cfg = cfg.train_dataloader.dataset.copy()
    train_cfg.update(data_root=data_roots[name], num_shots=2, serialize_data=False)
    train = DATASETS.build(train_cfg)
    listed = read_split_file(shots_file(data_roots[name], 'train', 2, 0))
    assert [train.get_data_info(i)['sample_id'] for i in range(2)] == listed
    sample = train[0]
    assert sample['inputs'].shape[0] == 3 and max(sample['inputs'].shape[1:]) == 1024
    labels = np.unique(sample['data_samples'].gt_sem_seg.data.numpy())
    assert set(labels.tolist()) <= {0, 1} and 1 in labels
    test_cfg = cfg.test_dataloader.dataset.copy()
    test_cfg.update(data_root=data_roots[name], serialize_data=False)
    test = DATASETS.build(test_cfg)
    assert len(test) == COUNTS[name][cfg.test_split]
    assert cfg.test_evaluator.type == 'BinaryDiceMetric'


def test_shot_lists_are_seeded_subsets(data_roots):
    root = data_roots['kvasir_seg']
    ids = sorted(split_ids(root, 'train', '.jpg'))
    for n, seed in ((1, 0), (3, 0), (3, 7)):
        got = make_shots(root, 'train', n, seed, '.jpg')
        assert got == seeded_subset(ids, n, seed)
        ds = KvasirSEGDataset(data_root=root, split='train', num_shots=n,
                              seed=seed, pipeline=[], serialize_data=False)
        assert len(ds) == n
    with pytest.raises(ValueError, match=r"num_shots=5 is larger than split "
                       r"'train' of .* \(4 images\)"):
        make_shots(root, 'train', 5, 0, '.jpg')


def test_errors_name_the_fault(data_roots, tmp_path):
    root = data_roots['livecell']
    with pytest.raises(ValueError, match=r"LIVECellDataset split must be one "
                       r"of \('train', 'val', 'test'\), got 'eval'"):
        LIVECellDataset(data_root=root, split='eval', pipeline=[],
                        serialize_data=False)
    with pytest.raises(FileNotFoundError, match=r'N-shot list .*train_8shot_'
                       r'seed3.txt does not exist; write it with .*'
                       r'ptsam_few_shot.py'):
        LIVECellDataset(data_root=root, num_shots=8, seed=3, pipeline=[],
                        serialize_data=False)
    bad = tmp_path / 'bad.txt'
    bad.write_text('A172_not_there\n')
    with pytest.raises(FileNotFoundError, match=r"line 1 .*'A172_not_there'"):
        LIVECellDataset(data_root=root, shots_file=str(bad), pipeline=[],
                        serialize_data=False)
    with pytest.raises(FileNotFoundError, match=r"split 'train' of .* has no "
                       r'folder .*convert the dataset first'):
        EMParticlesDataset(data_root=str(tmp_path), pipeline=[], serialize_data=False)
    with pytest.raises(ValueError, match='sets data_prefix from split'):
        EMParticlesDataset(data_root=root, data_prefix=dict(img_path='x'),
                           pipeline=[], serialize_data=False)


def test_published_full_counts():
    from mmsamptx.datasets.em_particles import EMPS_EXPECTED
    from mmsamptx.datasets.kvasir_seg import KVASIR_EXPECTED
    assert EMPS_EXPECTED == dict(train=366, test=99)
    assert KVASIR_EXPECTED == dict(train=880, val=120)
