"""RefCOCODataset on a miniature refer layout."""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
from mmseg.registry import DATASETS
from test_datasets.miniature import make_refer

from mmsamptx.datasets.utils import safe_pickle_load

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs', meta_keys=('img_path', 'ori_shape',
                                          'expression', 'class_name'))
]


def build(root, **kw):
    cfg = dict(type='RefCOCODataset', data_root=root, pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def rect(y0, y1, x0, x1, h=16, w=20):
    m = np.zeros((h, w), np.int64)
    m[y0:y1, x0:x1] = 1
    return m


def test_val_one_sample_per_sentence(tmp_path):
    root = make_refer(str(tmp_path))
    ds = build(root, dataset='refcoco', split='val')
    assert len(ds) == 3
    exprs = [ds[i]['data_samples'].expression for i in range(3)]
    assert exprs == ['man on the left', 'person in red', 'blue car']
    s0 = ds[0]['data_samples']
    assert s0.img_path.endswith('COCO_train2014_000000000001.jpg')
    assert s0.class_name == 'person'
    np.testing.assert_array_equal(s0.gt_sem_seg.data.numpy()[0],
                                  rect(0, 8, 0, 10))
    np.testing.assert_array_equal(ds[2]['data_samples'].gt_sem_seg.data[0],
                                  rect(2, 12, 2, 6))
    info = ds.get_data_info(1)
    assert (info['ref_id'], info['ann_id'], info['sent_id']) == (1, 100, 11)
    test_a = build(root, dataset='refcoco', split='testA')
    assert len(test_a) == 1
    np.testing.assert_array_equal(test_a[0]['data_samples'].gt_sem_seg.data[0],
                                  rect(8, 14, 12, 18))
    assert sorted(os.listdir(osp.join(root, 'refcoco', 'masks'))) == \
        ['100.png', '101.png', '102.png']


def test_refcocog_umd_and_split_errors(tmp_path):
    root = make_refer(str(tmp_path), dataset='refcocog', split_by='umd')
    assert len(build(root, dataset='refcocog', split='val')) == 3
    with pytest.raises(ValueError) as e:
        build(root, dataset='refcocog', split='testA')
    assert "no split 'testA'" in str(e.value)
    assert "['train', 'val', 'test']" in str(e.value)
    with pytest.raises(ValueError, match="no ref in split 'test'"):
        build(root, dataset='refcocog', split='test')
    with pytest.raises(ValueError, match='dataset must be one of'):
        build(root, dataset='refclef')
    with pytest.raises(FileNotFoundError, match=r'refcoco\+/refs\(unc\).p'):
        build(root, dataset='refcoco+', split='val')


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_malicious_pickle_refused(tmp_path):
    root = make_refer(str(tmp_path))
    path = osp.join(root, 'refcoco', 'refs(unc).p')
    with open(path, 'wb') as f:
        pickle.dump([dict(ref_id=1, x=Evil())], f)
    with pytest.raises(pickle.UnpicklingError) as e:
        build(root, dataset='refcoco', split='val')
    assert 'posix.system' in str(e.value) or 'os.system' in str(e.value)
    assert 'refs(unc).p' in str(e.value)


def test_safe_pickle_reads_protocol0_py2_style(tmp_path):
    p = tmp_path / 'refs.p'
    data = [dict(ref_id=1, sentences=[dict(sent='a b')], split='val',
                 bbox=(1.0, 2.0), tags={'x'})]
    for proto in (0, 2, 5):
        with open(p, 'wb') as f:
            pickle.dump(data, f, protocol=proto)
        assert safe_pickle_load(str(p)) == data


def test_missing_image_named(tmp_path):
    root = make_refer(str(tmp_path))
    img = osp.join(root, 'images', 'train2014', 'COCO_train2014_000000000002.jpg')
    os.remove(img)
    with pytest.raises(FileNotFoundError, match='COCO_train2014_000000000002'):
        build(root, dataset='refcoco', split='val')
