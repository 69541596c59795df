"""ADE20KSplitDataset on a miniature ADEChallengeData2016."""
import os.path as osp

import numpy as np
import pytest
from test_datasets.miniature import ade_label, make_ade
from mmseg.registry import DATASETS

import mmsamptx  # noqa: F401

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


def build(root, **kw):
    cfg = dict(
        type='ADE20KSplitDataset', data_root=root,
        data_prefix=dict(img_path='images/training',
                         seg_map_path='annotations/training'),
        pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def test_split_file_selects_ids_and_loads_labels(tmp_path):
    root = make_ade(str(tmp_path))
    split = tmp_path / 'labeled.txt'
    split.write_text('ADE_train_00000003\nADE_train_00000007\n\n')
    ds = build(root, ann_file=str(split))
    assert len(ds) == 2
    assert len(ds.metainfo['classes']) == 150
    sample = ds[1]
    assert sample['data_samples'].img_path.endswith('ADE_train_00000007.jpg')
    gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
    raw = ade_label(7).astype(np.int64)
    expected = np.where(raw == 0, 255, raw - 1)  # reduce_zero_label
    np.testing.assert_array_equal(gt, expected)
    assert sample['inputs'].shape == (3, 12, 16)


def test_split_relative_to_data_root_and_unimatch_lines(tmp_path):
    root = make_ade(str(tmp_path))
    with open(osp.join(root, 'lab.txt'), 'w') as f:
        f.write('images/training/ADE_train_00000002.jpg '
                'annotations/training/ADE_train_00000002.png\n')
    ds = build(root, ann_file='lab.txt')
    assert [osp.basename(ds.get_data_info(i)['img_path']) for i in range(len(ds))] == \
        ['ADE_train_00000002.jpg']


def test_without_split_uses_whole_folder(tmp_path):
    ds = build(make_ade(str(tmp_path)))
    assert len(ds) == 10


def test_split_naming_missing_id_raises(tmp_path):
    root = make_ade(str(tmp_path))
    split = tmp_path / 'labeled.txt'
    split.write_text('ADE_train_00000001\nADE_train_99999999\n')
    with pytest.raises(FileNotFoundError) as e:
        build(root, ann_file=str(split))
    msg = str(e.value)
    assert str(split) in msg and 'ADE_train_99999999' in msg
    assert osp.join('images', 'training', 'ADE_train_99999999.jpg') in msg


def test_empty_split_and_empty_folder_raise(tmp_path):
    root = make_ade(str(tmp_path))
    split = tmp_path / 'empty.txt'
    split.write_text('\n')
    with pytest.raises(ValueError, match='lists no image id'):
        build(root, ann_file=str(split))
    empty = tmp_path / 'empty_root'
    (empty / 'images' / 'training').mkdir(parents=True)
    with pytest.raises(ValueError, match='is empty'):
        build(str(empty))


def test_duplicate_id_raises(tmp_path):
    root = make_ade(str(tmp_path))
    split = tmp_path / 'dup.txt'
    split.write_text('ADE_train_00000001\nADE_train_00000001\n')
    with pytest.raises(ValueError, match='listed twice'):
        build(root, ann_file=str(split))
