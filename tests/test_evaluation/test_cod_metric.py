"""CODMetric at the mask size: the authors' MAE (samptx-authors.md §6.10)."""
import numpy as np
import py_sod_metrics as sod
import pytest
import torch
from mmseg.registry import METRICS

import mmsamptx  # noqa: F401
from mmsamptx.evaluation.cod_metric import prob_to_uint8


def sample(logits, gt):
    return dict(pred_class_logits=torch.as_tensor(logits, dtype=torch.float32),
                gt_sem_seg=dict(data=torch.as_tensor(np.asarray(gt)[None])),
                img_path='x.jpg')


def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def evaluate(cfg, samples):
    m = METRICS.build(cfg)
    m.process({}, samples)
    return m.evaluate(len(samples))


def test_authors_mae_by_hand():
    # Image 1: 4x4 label squashed to 2x2 at pixel centres (rows/cols 1 and 3).
    gt1 = np.zeros((4, 4), np.uint8)
    gt1[1, 1] = 1          # -> (0, 0) positive
    gt1[3, 3] = 200        # a non-binarised value > 127 -> (1, 1) positive
    gt1[1, 3] = 100        # <= 127 -> (0, 1) negative
    gt1[0, 0] = 1          # not sampled
    l1 = np.array([[[2.0, -1.0], [0.0, 3.0]]])
    g1 = np.array([[1, 0], [0, 1]])
    # Image 2: same size as its logits.
    gt2 = np.array([[0, 1], [1, 1]], np.uint8)
    l2 = np.array([[[-2.0, 1.0], [0.5, -0.5]]])
    mae1 = np.abs(sigmoid(l1[0]) - g1).mean()
    mae2 = np.abs(sigmoid(l2[0]) - gt2).mean()
    res = evaluate(dict(type='CODMetric', size='mask', prefix='camo'),
                   [sample(l1, gt1), sample(l2, gt2)])
    assert res['camo/MAE'] == pytest.approx((mae1 + mae2) / 2, abs=1e-12)


def test_mask_size_measures_equal_py_sod_metrics():
    rng = np.random.RandomState(0)
    samples, ref = [], [sod.Smeasure(), sod.Emeasure(), sod.WeightedFmeasure()]
    for i in range(3):
        gt = np.zeros((40, 48), np.uint8)
        gt[5 + i:25, 10:30 + i] = 1
        small = gt[np.arange(16) * 40 // 16 + 1][:, np.arange(16) * 48 // 16 + 1]
        logits = rng.randn(1, 16, 16) * 2 + (small * 3 - 1.5)
        samples.append(sample(logits, gt))
        # nearest-exact rows: floor((i + 0.5) * 40 / 16) = 1, 3, 6, ...
        rows = np.floor((np.arange(16) + 0.5) * 40 / 16).astype(int)
        cols = np.floor((np.arange(16) + 0.5) * 48 / 16).astype(int)
        g = gt[rows][:, cols] * 255
        for m in ref:
            m.step(pred=prob_to_uint8(sigmoid(logits[0])), gt=g.astype(np.uint8))
    res = evaluate(dict(type='CODMetric', size='mask'), samples)
    assert res['Sm'] == pytest.approx(ref[0].get_results()['sm'], abs=1e-12)
    em = ref[1].get_results()['em']
    assert res['maxEm'] == pytest.approx(em['curve'].max(), abs=1e-12)
    assert res['adpEm'] == pytest.approx(em['adp'], abs=1e-12)
    assert res['wFm'] == pytest.approx(ref[2].get_results()['wfm'], abs=1e-12)


def test_mask_size_errors():
    with pytest.raises(ValueError, match='size must be one of'):
        METRICS.build(dict(type='CODMetric', size='256'))
    m = METRICS.build(dict(type='CODMetric', size='mask'))
    with pytest.raises(ValueError, match=r'must be \(1, h, w\)'):
        m.process({}, [sample(np.zeros((2, 4, 4)), np.zeros((4, 4), np.uint8))])
    with pytest.raises(KeyError, match='pred_class_logits'):
        m.process({}, [dict(gt_sem_seg=dict(data=torch.zeros(1, 4, 4)))])
