"""ClassPairDataset: one sample per (image, present class) on miniatures."""
import logging
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.logging import MMLogger
from mmseg.registry import DATASETS
from test_datasets.miniature import make_ade, write_img, write_label

import mmsamptx  # noqa: F401
from mmsamptx.datasets import ClassPairDataset

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]


def ade_cfg(root, **kwargs):
    return dict(type='ClassPairDataset',
                dataset=dict(type='ADE20KSplitDataset', data_root=root,
                             data_prefix=dict(img_path='images/training',
                                              seg_map_path='annotations/training'),
                             pipeline=PIPELINE),
                **kwargs)


def make_three_class(root, labels):
    """img/<i>.png + ann/<i>.png for a 3-class (background, a, b) dataset."""
    for i, lab in enumerate(labels):
        write_img(osp.join(root, 'img', f'{i:02d}.png'), *np.shape(lab), seed=i)
        write_label(osp.join(root, 'ann', f'{i:02d}.png'), lab)
    return dict(type='BaseSegDataset', data_root=root,
                metainfo=dict(classes=('background', 'a', 'b')),
                img_suffix='.png', seg_map_suffix='.png',
                data_prefix=dict(img_path='img', seg_map_path='ann'), pipeline=PIPELINE)


def test_pairs_after_reduce_zero_label(tmp_path):
    root = make_ade(str(tmp_path / 'ade'), n_train=6)
    ds = DATASETS.build(ade_cfg(root, cache_dir=str(tmp_path / 'cache')))
    # ade_label(i): 0 ("other" -> 255 ignore) plus labels i+1 and 7i+1 -> classes i and 7i.
    expected = [(i - 1, c) for i in range(1, 7) for c in sorted({i % 150, (7 * i) % 150})]
    assert [ds.pair(k) for k in range(len(ds))] == expected
    assert len(ds) == 12
    assert ds.classes_of(1) == [2, 14]
    assert ds.get_cat_ids(3) == [14]
    assert ds.metainfo['classes'] == ds.dataset.metainfo['classes']
    for k in (0, 3):
        out = ds[k]
        s = out['data_samples']
        img_idx, cls = ds.pair(k)
        assert s.sample_class == cls and isinstance(s.sample_class, int)
        assert s.img_path == ds.dataset.get_data_info(img_idx)['img_path']
        assert cls in np.unique(s.gt_sem_seg.data.numpy())


def test_cache_reused_and_invalidated(tmp_path, monkeypatch):
    root = make_ade(str(tmp_path / 'ade'), n_train=4)
    cache = tmp_path / 'cache'
    calls = []
    scan = ClassPairDataset.scan_labels

    def counting_scan(self, infos):
        calls.append(len(infos))
        return scan(self, infos)

    monkeypatch.setattr(ClassPairDataset, 'scan_labels', counting_scan)
    first = DATASETS.build(ade_cfg(root, cache_dir=str(cache)))
    assert calls == [4] and len(os.listdir(cache)) == 1
    # No label file is decoded on the second build.
    import mmcv
    monkeypatch.setattr(mmcv, 'imfrombytes', lambda *a, **k: pytest.fail('label read'))
    second = DATASETS.build(ade_cfg(root, cache_dir=str(cache)))
    assert calls == [4]
    assert [second.pair(k) for k in range(len(second))] == \
        [first.pair(k) for k in range(len(first))]
    monkeypatch.undo()
    monkeypatch.setattr(ClassPairDataset, 'scan_labels', counting_scan)
    # Changing a label file changes the key: the labels are scanned again.
    lab = osp.join(root, 'annotations', 'training', 'ADE_train_00000002.png')
    write_label(lab, np.full((12, 16), 40, np.uint8))
    os.utime(lab, ns=(1, 1))
    third = DATASETS.build(ade_cfg(root, cache_dir=str(cache)))
    assert calls == [4, 4]
    assert third.classes_of(1) == [39]
    # cache_dir=False: always scanned, nothing written.
    DATASETS.build(ade_cfg(root, cache_dir=False))
    assert calls == [4, 4, 4] and len(os.listdir(cache)) == 2


def test_empty_image_error_and_skip(tmp_path):
    root = make_ade(str(tmp_path / 'ade'), n_train=5)
    bad = osp.join(root, 'annotations', 'training', 'ADE_train_00000003.png')
    write_label(bad, np.zeros((12, 16), np.uint8))  # only "other": nothing after reduction
    with pytest.raises(ValueError, match='ADE_train_00000003.png has no class'):
        DATASETS.build(ade_cfg(root, cache_dir=str(tmp_path / 'c')))
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        ds = DATASETS.build(ade_cfg(root, on_empty='skip', cache_dir=str(tmp_path / 'c')))
    finally:
        logger.removeHandler(handler)
    assert 2 not in {ds.pair(k)[0] for k in range(len(ds))}
    assert len(ds) == 8 and ds.classes_of(2) == []
    assert any('1 of 5 images have no class' in r.getMessage() for r in records)
    with pytest.raises(ValueError, match='on_empty must be one of'):
        DATASETS.build(ade_cfg(root, on_empty='drop'))


def test_class_selection(tmp_path):
    labels = [np.array([[0, 0], [1, 2]]), np.array([[0, 0], [0, 2]]),
              np.array([[0, 255], [0, 0]])]
    inner = make_three_class(str(tmp_path / 'd'), labels)
    cache = str(tmp_path / 'c')
    all_ = DATASETS.build(dict(type='ClassPairDataset', dataset=inner, on_empty='skip',
                               cache_dir=cache))
    assert [all_.pair(k) for k in range(len(all_))] == [(0, 0), (0, 1), (0, 2), (1, 0),
                                                      (1, 2), (2, 0)]
    no_bg = DATASETS.build(dict(type='ClassPairDataset', dataset=inner,
                                exclude_classes=[0], on_empty='skip', cache_dir=cache))
    assert [no_bg.pair(k) for k in range(len(no_bg))] == [(0, 1), (0, 2), (1, 2)]
    only_b = DATASETS.build(dict(type='ClassPairDataset', dataset=inner, classes=['b'],
                                 on_empty='skip', cache_dir=cache))
    assert [only_b.pair(k) for k in range(len(only_b))] == [(0, 2), (1, 2)]
    with pytest.raises(ValueError, match='02.png has no class'):
        DATASETS.build(dict(type='ClassPairDataset', dataset=inner, exclude_classes=[0],
                            cache_dir=cache))
    with pytest.raises(ValueError, match=r"unknown class name 'c'; valid names: "
                                         r"\['background', 'a', 'b'\]"):
        DATASETS.build(dict(type='ClassPairDataset', dataset=inner, classes=['c']))
    with pytest.raises(ValueError, match='class id 3 is not a class'):
        DATASETS.build(dict(type='ClassPairDataset', dataset=inner, exclude_classes=[3]))


def test_label_value_outside_classes(tmp_path):
    inner = make_three_class(str(tmp_path / 'd'), [np.array([[0, 7]])])
    with pytest.raises(ValueError, match=r'00.png holds values \[7\]'):
        DATASETS.build(dict(type='ClassPairDataset', dataset=inner, cache_dir=False))


def test_label_map_applied_when_scanning(tmp_path):
    """classes=('background', 'b') on a (background, a, b) dataset: mmseg's
    label_map sends a -> 255 and b -> 1; the scan sees what LoadAnnotations gives."""
    from mmseg.datasets import BaseSegDataset

    class ThreeClassDataset(BaseSegDataset):
        METAINFO = dict(classes=('background', 'a', 'b'))

    cfg = make_three_class(str(tmp_path / 'd'), [np.array([[0, 1], [0, 1]]), np.array([[2, 1], [2, 1]])])
    cfg.pop('type')
    cfg['metainfo'] = dict(classes=('background', 'b'))
    inner = ThreeClassDataset(**cfg)
    assert inner.label_map == {0: 0, 1: 255, 2: 1}
    ds = ClassPairDataset(inner, exclude_classes=[0], on_empty='skip', cache_dir=False)
    assert [ds.pair(k) for k in range(len(ds))] == [(1, 1)]
    assert ds[0]['data_samples'].sample_class == 1


def test_with_authors_pipeline(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_',
                                   'datasets', 'authors_pipeline.py'))
    root = make_ade(str(tmp_path / 'ade'), n_train=2)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                *cfg.authors_train_pipeline_tail, dict(type='PackSegInputs')]
    c = ade_cfg(root, cache_dir=False)
    c['dataset']['pipeline'] = pipeline
    ds = DATASETS.build(c)
    np.random.seed(0)
    out = ds[1]
    assert out['inputs'].shape == (3, 1024, 1024)
    assert out['data_samples'].sample_class == ds.pair(1)[1]
    assert set(np.unique(out['data_samples'].gt_sem_seg.data.numpy())) <= {1, 7, 255}
