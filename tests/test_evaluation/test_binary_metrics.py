"""CODMetric, ReferringMetric and BinaryDiceMetric against reference numbers."""
import numpy as np
import pytest
import py_sod_metrics as sod
import torch
from mmengine.structures import PixelData
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS
from mmseg.structures import SegDataSample

from mmsamptx.evaluation.cod_metric import prob_to_uint8


def make_sample(gt, pred=None, prob=None, logits=None, path='x.jpg'):
    s = SegDataSample(metainfo=dict(img_path=path))
    s.gt_sem_seg = PixelData(data=torch.as_tensor(gt)[None].long())
    if pred is not None:
        s.pred_sem_seg = PixelData(data=torch.as_tensor(pred)[None].long())
    if prob is not None:
        s.pred_prob = PixelData(data=torch.as_tensor(prob)[None].float())
    if logits is not None:
        s.seg_logits = PixelData(data=torch.as_tensor(logits).float())
    return s


def run_metric(cfg, samples, as_dict=True, dataset_meta=None):
    metric = METRICS.build(cfg)
    metric.dataset_meta = dataset_meta or dict(classes=('bg', 'fg'))
    metric.process({}, [s.to_dict() if as_dict else s for s in samples])
    return metric.compute_metrics(metric.results)


def random_maps(n=4, h=24, w=30, seed=0):
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n):
        gt = np.zeros((h, w), np.int64)
        y, x = rng.randint(0, h // 2), rng.randint(0, w // 2)
        gt[y:y + h // 2, x:x + w // 2] = 1
        prob = np.clip(gt * 0.7 + rng.rand(h, w) * 0.5, 0, 1)
        out.append((gt, prob))
    return out


def reference_cod(maps):
    mae, sm, em, wfm = sod.MAE(), sod.Smeasure(), sod.Emeasure(), \
        sod.WeightedFmeasure()
    for gt, prob in maps:
        pred = prob_to_uint8(prob)
        gt8 = (gt * 255).astype(np.uint8)
        for m in (mae, sm, em, wfm):
            m.step(pred=pred, gt=gt8)
    e = em.get_results()['em']
    return dict(MAE=mae.get_results()['mae'], Sm=sm.get_results()['sm'],
                wFm=wfm.get_results()['wfm'], maxEm=e['curve'].max(),
                meanEm=e['curve'].mean(), adpEm=e['adp'])


def test_cod_metric_equals_py_sod_metrics():
    maps = random_maps()
    got = run_metric(dict(type='CODMetric'),
                     [make_sample(g, prob=p) for g, p in maps])
    ref = reference_cod(maps)
    for k, v in ref.items():
        assert got[k] == pytest.approx(float(v), abs=1e-12), k
    assert 0 < got['MAE'] < 1 and 0 < got['Sm'] <= 1


def test_cod_metric_from_logits_and_sample_objects():
    maps = random_maps(n=2, seed=1)
    logits1 = [np.log(np.clip(p, 1e-6, 1 - 1e-6) / np.clip(1 - p, 1e-6, 1))
               for _, p in maps]
    got1 = run_metric(dict(type='CODMetric'),
                      [make_sample(g, logits=lg[None])
                       for (g, _), lg in zip(maps, logits1)], as_dict=False)
    # two-channel logits: softmax channel 1 == sigmoid(l1 - l0)
    got2 = run_metric(dict(type='CODMetric'),
                      [make_sample(g, logits=np.stack([np.zeros_like(lg), lg]))
                       for (g, _), lg in zip(maps, logits1)])
    ref = reference_cod([(g, 1 / (1 + np.exp(-lg)))
                         for (g, _), lg in zip(maps, logits1)])
    for k, v in ref.items():
        assert got1[k] == pytest.approx(float(v), abs=1e-9), k
        assert got2[k] == pytest.approx(float(v), abs=1e-6), k


def test_cod_metric_size_mismatch_names_file():
    s = make_sample(np.zeros((4, 5)), prob=np.zeros((4, 6)), path='a/b.jpg')
    with pytest.raises(ValueError, match='b.jpg'):
        run_metric(dict(type='CODMetric'), [s])


def test_referring_ciou_giou_by_hand():
    # sample A: pred 4 px, gt 4 px, overlap 2 -> I=2, U=6, IoU=1/3
    gt_a = np.zeros((4, 4), np.int64)
    gt_a[0, :] = 1
    pr_a = np.zeros((4, 4), np.int64)
    pr_a[0, :2] = 1
    pr_a[1, :2] = 1
    # sample B: big, perfect -> I=U=12, IoU=1
    gt_b = np.zeros((4, 4), np.int64)
    gt_b[:3, :] = 1
    # sample C: both empty -> counted as IoU 1 in gIoU, adds nothing to cIoU
    zero = np.zeros((4, 4), np.int64)
    # sample D: an ignored pixel (255) where pred is wrong -> not counted
    gt_d = np.zeros((4, 4), np.int64)
    gt_d[3, 3] = 1
    gt_d[0, 0] = 255
    pr_d = np.zeros((4, 4), np.int64)
    pr_d[3, 3] = 1
    pr_d[0, 0] = 1
    samples = [make_sample(gt_a, pr_a), make_sample(gt_b, gt_b),
               make_sample(zero, zero), make_sample(gt_d, pr_d)]
    got = run_metric(dict(type='ReferringMetric'), samples)
    ciou = (2 + 12 + 0 + 1) / (6 + 12 + 0 + 1)
    giou = (1 / 3 + 1 + 1 + 1) / 4
    assert got['cIoU'] == pytest.approx(ciou * 100)
    assert got['gIoU'] == pytest.approx(giou * 100)
    assert abs(got['cIoU'] - got['gIoU']) > 1


def test_binary_dice_matches_mmseg_iou_metric():
    rng = np.random.RandomState(3)
    samples = []
    for _ in range(5):
        gt = (rng.rand(9, 11) > 0.6).astype(np.int64)
        gt[0, 0] = 255
        pred = (rng.rand(9, 11) > 0.5).astype(np.int64)
        samples.append(make_sample(gt, pred))
    got = run_metric(dict(type='BinaryDiceMetric'), samples)
    # mmseg's IoUMetric on the same masks: foreground entry (class 1)
    areas = [IoUMetric.intersect_and_union(
        s.pred_sem_seg.data.squeeze(), s.gt_sem_seg.data.squeeze(), 2, 255)
        for s in samples]
    tot = [sum(a[i] for a in areas) for i in range(4)]
    ref = IoUMetric.total_area_to_metrics(*tot, metrics=['mIoU', 'mDice'])
    assert got['IoU'] == pytest.approx(float(ref['IoU'][1]) * 100, abs=1e-4)
    assert got['Dice'] == pytest.approx(float(ref['Dice'][1]) * 100, abs=1e-4)
    # the registered IoUMetric reports the mean of bg and fg
    iou_metric = run_metric(dict(type='IoUMetric', iou_metrics=['mIoU', 'mDice']),
                            samples)
    assert iou_metric['mIoU'] == pytest.approx(
        float(np.nanmean(ref['IoU'])) * 100, abs=0.01)
    # per-image mean
    per_iou, per_dice = [], []
    for s in samples:
        g = s.gt_sem_seg.data.numpy()[0]
        p = s.pred_sem_seg.data.numpy()[0]
        v = g != 255
        i = np.sum((g == 1) & (p == 1) & v)
        u = np.sum(((g == 1) | (p == 1)) & v)
        per_iou.append(i / u)
        per_dice.append(2 * i / (np.sum((g == 1) & v) + np.sum((p == 1) & v)))
    assert got['mIoU'] == pytest.approx(np.mean(per_iou) * 100)
    assert got['mDice'] == pytest.approx(np.mean(per_dice) * 100)


def test_binary_dice_empty_cases():
    zero = np.zeros((3, 3), np.int64)
    got = run_metric(dict(type='BinaryDiceMetric'), [make_sample(zero, zero)])
    assert got['mDice'] == 100 and got['Dice'] == 100
    with pytest.raises(ValueError, match='no sample'):
        run_metric(dict(type='BinaryDiceMetric'), [])
