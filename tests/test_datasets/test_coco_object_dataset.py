"""COCOObjectDataset on converter output for a miniature COCO."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS
from test_datasets.miniature import expected_coco_train_labels, make_coco

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


@pytest.fixture
def coco_root(tmp_path):
    root = make_coco(str(tmp_path / 'coco'))
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'coco_object.py')
    spec = importlib.util.spec_from_file_location('coco_conv', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.convert(root, workers=0)
    return root


def build(root, **kw):
    cfg = dict(type='COCOObjectDataset', data_root=root,
               data_prefix=dict(img_path='train2017',
                                seg_map_path='masks/train2017'),
               pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def test_loads_all_and_split(coco_root, tmp_path):
    ds = build(coco_root)
    assert len(ds) == 3 and len(ds.metainfo['classes']) == 81
    assert ds.metainfo['classes'][17] == 'dog'
    expected = expected_coco_train_labels()
    for i in range(3):
        s = ds[i]['data_samples']
        stem = osp.basename(s.img_path)[:-4]
        np.testing.assert_array_equal(s.gt_sem_seg.data.numpy()[0],
                                      expected[stem])
    split = tmp_path / 'labeled.txt'
    split.write_text('000000000002\n')
    assert len(build(coco_root, ann_file=str(split))) == 1
    split.write_text('000000000002\n000000000005\n')
    with pytest.raises(FileNotFoundError, match='000000000005'):
        build(coco_root, ann_file=str(split))
