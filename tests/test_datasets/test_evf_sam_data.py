"""EVF-SAM's data unit: one image with its expressions (RefCOCODataset(group_by='image'),
LoadReferringMasks, PackReferringInputs) and ReferringMetric over (E, H, W) samples (method
notes §11, §12), on the generated referring-shapes task in RefCOCO's layout."""
import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, METRICS

import mmsamptx  # noqa: F401
from mmsamptx.demo.referring_shapes import write_referring_shapes
from mmsamptx.evaluation.referring_metric import referring_areas

init_default_scope('mmseg')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return write_referring_shapes(str(tmp_path_factory.mktemp('shapes')), dict(train=3, val=2), size=32)


def build(root, split, pipeline, **kw):
    return DATASETS.build(dict(type='RefCOCODataset', data_root=root, split=split, pipeline=pipeline, **kw))


def test_group_by_image_holds_every_sentence(root):
    per_sentence = build(root, 'val', [])
    per_image = build(root, 'val', [], group_by='image')
    assert len(per_sentence) == 12 and len(per_image) == 2   # 2 images x 2 objects x 3 sentences
    info = per_image.get_data_info(0)
    first = [per_sentence.get_data_info(i) for i in range(6)]
    assert info['expressions'] == [f['expression'] for f in first]
    assert info['seg_map_paths'] == [f['seg_map_path'] for f in first]
    assert info['ref_ids'] == [f['ref_id'] for f in first] and len(set(info['ref_ids'])) == 2
    colour, shape = info['expressions'][0].split()[1:]   # 'the <colour> <shape>'
    assert info['expressions'][1:3] == [f'the {shape} on the left', f'the {colour} one']
    with pytest.raises(ValueError, match="group_by must be one of"):
        build(root, 'val', [], group_by='ref')


def test_masks_loaded_drawn_and_packed(root):
    test = build(root, 'val', [dict(type='LoadImageFromFile'), dict(type='LoadReferringMasks'),
                               dict(type='PackReferringInputs')], group_by='image')
    item = test[0]
    sample = item['data_samples']
    assert item['inputs'].shape == (3, 32, 32) and item['inputs'].dtype == torch.uint8
    assert sample.gt_sem_seg.data.shape == (6, 32, 32)
    assert len(sample.expressions) == 6
    gt = sample.gt_sem_seg.data
    assert torch.equal(gt[0], gt[1]) and torch.equal(gt[0], gt[2])  # one ref, three sentences
    assert not (gt[0].bool() & gt[3].bool()).any()                  # the two objects are apart
    train = build(root, 'train', [dict(type='LoadImageFromFile'),
                                  dict(type='LoadReferringMasks', max_expressions=3),
                                  dict(type='PackReferringInputs')], group_by='image')
    np.random.seed(0)
    drawn = [train[0]['data_samples'] for _ in range(8)]
    full = train.get_data_info(0)
    for s in drawn:
        assert len(s.expressions) == 3 == s.gt_sem_seg.data.shape[0]
        assert len(set(s.sent_ids)) == 3                              # without replacement
        for e, ref, m in zip(s.expressions, s.ref_ids, s.gt_sem_seg.data):
            k = full['expressions'].index(e)
            assert full['ref_ids'][k] == ref
    assert len({tuple(s.sent_ids) for s in drawn}) > 1
    from mmsamptx.datasets.transforms import LoadReferringMasks
    with pytest.raises(ValueError, match='max_expressions must be a positive int'):
        LoadReferringMasks(max_expressions=0)


def test_referring_metric_counts_each_expression():
    pred = np.zeros((3, 4, 4), np.int64)
    gt = np.zeros((3, 4, 4), np.int64)
    gt[0, 0, :] = 1
    pred[0, 0, :2] = 1                       # I 2, U 4
    gt[1, 1:3, :] = 1
    pred[1, 1:3, :] = 1                      # I 8, U 8
    gt[2, 3, 0] = 2                          # overlapping polygons summed: neither target nor ignored
    pred[2, 3, 0:2] = 1                      # I 0, U 2 (the value-2 pixel counts in U)
    inter, union = referring_areas(pred, gt)
    assert inter.tolist() == [2, 8, 0] and union.tolist() == [4, 8, 2]
    metric = METRICS.build(dict(type='ReferringMetric'))
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for p, g in ((pred, gt), (np.zeros((1, 4, 4), np.int64), np.zeros((1, 4, 4), np.int64))):
        s = SegDataSample()
        s.pred_sem_seg = PixelData(data=torch.from_numpy(p))
        s.gt_sem_seg = PixelData(data=torch.from_numpy(g))
        samples.append(s.to_dict())
    metric.process({}, samples)
    got = metric.evaluate(2)                 # two data samples, four expressions
    assert got['num_expressions'] == 4
    assert got['cIoU'] == pytest.approx(100 * 10 / 14)
    assert got['gIoU'] == pytest.approx(100 * (0.5 + 1 + 0 + 1) / 4)  # empty/empty counts 1


def test_summed_polygons_as_the_authors(tmp_path):
    import json
    import os.path as osp
    root = write_referring_shapes(str(tmp_path), dict(val=1), size=32)
    path = osp.join(root, 'refcoco', 'instances.json')
    inst = json.load(open(path))
    inst['annotations'][0]['segmentation'].append([0.0, 0.0, 12.0, 0.0, 12.0, 12.0, 0.0, 12.0])
    json.dump(inst, open(path, 'w'))
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadReferringMasks'),
                dict(type='PackReferringInputs')]
    union = build(root, 'val', pipeline, group_by='image')[0]['data_samples'].gt_sem_seg.data[0]
    summed = build(root, 'val', pipeline, group_by='image',
                   polygons='sum')[0]['data_samples'].gt_sem_seg.data[0]
    assert union.max() == 1 and summed.max() == 2
    assert torch.equal(summed.clamp(max=1), union)
    assert osp.isfile(osp.join(root, 'refcoco', 'masks', f'{inst["annotations"][0]["id"]}_sum.png'))
    with pytest.raises(ValueError, match="polygons must be one of"):
        build(root, 'val', [], polygons='max')
