"""FewShotBinaryDataset on a miniature folder layout and DSB 2018 layout."""
import os
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS
from test_datasets.miniature import dsb_union, make_dsb, make_folder_binary

from mmsamptx.datasets.utils import seeded_subset

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=('img_path', 'ori_shape',
                                          'class_name'))
]


def build(root, **kw):
    cfg = dict(type='FewShotBinaryDataset', data_root=root, pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def test_folder_train_test_split(tmp_path):
    root = make_folder_binary(str(tmp_path), n=20)
    train = build(root, num_shots=16, seed=0, class_name='cell')
    test = build(root, split='test', num_shots=16, seed=0)
    assert len(train) == 16 and len(test) == 4
    ids = [train.get_data_info(i)['sample_id'] for i in range(16)]
    held = [test.get_data_info(i)['sample_id'] for i in range(4)]
    assert held == ['cell_000', 'cell_003', 'cell_012', 'cell_015']
    assert sorted(ids + held) == [f'cell_{i:03d}' for i in range(20)]
    assert ids == seeded_subset(ids + held, 16, 0)
    s = train[0]['data_samples']
    assert s.class_name == 'cell'
    i = int(osp.basename(s.img_path)[5:8])
    expected = np.zeros((8, 10), np.int64)
    expected[1:1 + i % 5, 2:6] = 1
    np.testing.assert_array_equal(s.gt_sem_seg.data.numpy()[0], expected)
    assert len(build(root, split='all')) == 20


def test_folder_zero_one_masks(tmp_path):
    root = make_folder_binary(str(tmp_path), n=4, mask_values=(0, 1))
    ds = build(root, split='all')
    gt = ds[3]['data_samples'].gt_sem_seg.data.numpy()[0]
    assert gt.max() == 1 and gt[1:4, 2:6].all()


def test_folder_stem_mismatch_named(tmp_path):
    root = make_folder_binary(str(tmp_path), n=5)
    os.rename(osp.join(root, 'masks', 'cell_002.png'),
              osp.join(root, 'masks', 'cell_2.png'))
    with pytest.raises(ValueError) as e:
        build(root, num_shots=2)
    assert "images without mask ['cell_002']" in str(e.value)
    assert "masks without image ['cell_2']" in str(e.value)


def test_bad_arguments(tmp_path):
    root = make_folder_binary(str(tmp_path), n=4)
    with pytest.raises(ValueError, match='leaves no held-out'):
        build(root, num_shots=4)
    with pytest.raises(ValueError, match="split must be one of"):
        build(root, split='val')
    empty = tmp_path / 'empty'
    (empty / 'images').mkdir(parents=True)
    (empty / 'masks').mkdir()
    with pytest.raises(ValueError, match='is empty'):
        build(str(empty))


def test_dsb2018_layout_unions_instance_masks(tmp_path):
    stage = make_dsb(str(tmp_path), n=5)
    ds = build(stage, layout='dsb2018', split='all', class_name='nucleus')
    assert len(ds) == 5
    for i in range(5):
        s = ds[i]['data_samples']
        np.testing.assert_array_equal(s.gt_sem_seg.data.numpy()[0],
                                      dsb_union(i))
        assert s.class_name == 'nucleus'
    assert len(os.listdir(tmp_path / 'stage1_train_union')) == 5
    assert len(build(stage, layout='dsb2018', num_shots=3)) == 3
