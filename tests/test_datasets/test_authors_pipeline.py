"""The authors' augmentation pipeline (configs/_base_/datasets/authors_pipeline.py)."""
import copy
import os.path as osp

import cv2
import numpy as np
import pytest
from mmcv.transforms import Compose
from mmengine.config import Config

import mmsamptx  # noqa: F401  (registers SeededAlbu)

CFG = Config.fromfile(
    osp.join(osp.dirname(__file__), '..', '..', 'configs', '_base_', 'datasets',
             'authors_pipeline.py'))
SIZE = CFG.authors_size
FILL = CFG.authors_fill_label
LABEL_VALUES = {0, 3, 7, 149}
# Step names in pipeline order: (index in the tail, index inside SeededAlbu or None).
STEPS = dict(hflip=(1, None), vflip=(2, None), crop=(3, 0), affine=(3, 1), jitter=(3, 2),
             blur=(3, 3), brightness_contrast=(3, 4), cutout=(3, 5))


def inputs(h=300, w=400, seed=0):
    """A BGR image with values 0..100 (the cut-out colour cannot occur) and a label map."""
    rng = np.random.RandomState(seed)
    img = rng.randint(0, 101, (h, w, 3)).astype(np.uint8)
    lab = np.zeros((h, w), np.uint8)
    lab[:h // 2, w // 3:] = 3
    lab[h // 2:, :w // 2] = 7
    lab[h // 2:, w // 2:] = 149
    return dict(img=img, gt_seg_map=lab, seg_fields=['gt_seg_map'], img_shape=(h, w),
                ori_shape=(h, w), img_path='x.png')


def pipeline_with(step=None, **overrides):
    """The tail with only ``step`` applied (p = 1), every other step off (p = 0)."""
    tail = copy.deepcopy(CFG.authors_train_pipeline_tail)
    for name, (i, j) in STEPS.items():
        t = tail[i] if j is None else tail[i]['transforms'][j]
        key = 'prob' if j is None else 'p'
        t[key] = 1.0 if name == step else 0.0
        if name == step:
            t.update(overrides)
    return Compose(tail)


def resized(results):
    img = cv2.resize(results['img'], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(results['gt_seg_map'], (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)
    return img, lab


def run(pipeline, seed=0, **kw):
    np.random.seed(seed)
    return pipeline(inputs(**kw))


def test_order_and_arguments():
    tail = CFG.authors_train_pipeline_tail
    assert [t['type'] for t in tail] == ['Resize', 'RandomFlip', 'RandomFlip', 'SeededAlbu']
    assert tail[0]['keep_ratio'] is False and tail[0]['scale'] == (SIZE, SIZE)
    assert [t['direction'] for t in tail[1:3]] == ['horizontal', 'vertical']
    albu = tail[3]['transforms']
    assert [t['type'] for t in albu] == ['RandomResizedCrop', 'Affine', 'ColorJitter',
                                         'GaussianBlur', 'ColorJitter', 'CoarseDropout']
    assert [t['p'] for t in albu] == [0.5, 0.5, 0.7, 0.2, 0.2, 0.3]
    assert CFG.authors_test_resize == dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=False)
    assert CFG.authors_train_pipeline == [dict(type='LoadImageFromFile'),
                                          dict(type='LoadAnnotations'), *tail,
                                          dict(type='PackSegInputs')]
    assert [t['type'] for t in CFG.authors_test_pipeline] == [
        'LoadImageFromFile', 'Resize', 'LoadAnnotations', 'PackSegInputs']


@pytest.mark.parametrize('seed', range(6))
def test_default_pipeline_keeps_size_and_label_values(seed):
    out = run(Compose(copy.deepcopy(CFG.authors_train_pipeline_tail)), seed=seed)
    assert out['img'].shape == (SIZE, SIZE, 3) and out['img'].dtype == np.uint8
    assert out['gt_seg_map'].shape == (SIZE, SIZE)
    assert set(np.unique(out['gt_seg_map']).tolist()) <= LABEL_VALUES | {FILL}


def test_reseeded_from_numpy():
    p = Compose(copy.deepcopy(CFG.authors_train_pipeline_tail))
    a, b, c = run(p, seed=3), run(p, seed=3), run(p, seed=4)
    np.testing.assert_array_equal(a['img'], b['img'])
    np.testing.assert_array_equal(a['gt_seg_map'], b['gt_seg_map'])
    assert not np.array_equal(a['img'], c['img'])


def test_steps_are_not_correlated():
    """One shared generator: the p-tests of two steps with the same p are independent.

    (Seeding each step with the same number, as ``Compose.set_random_seed`` does,
    makes them fire together every time.)"""
    tail = copy.deepcopy(CFG.authors_train_pipeline_tail)
    for name, (i, j) in STEPS.items():
        if j is None:
            tail[i]['prob'] = 0.0
        else:
            tail[i]['transforms'][j]['p'] = 0.5 if name in ('crop', 'cutout') else 0.0
    p = Compose(tail)
    _, lab = resized(inputs(60, 80))
    crop, drop = [], []
    for seed in range(30):
        out = run(p, seed=seed, h=60, w=80)
        drop.append(bool((out['gt_seg_map'] == FILL).any()))
        kept = out['gt_seg_map'] != FILL
        crop.append(not np.array_equal(out['gt_seg_map'][kept], lab[kept]))
    assert 0 < sum(crop) < 30 and 0 < sum(drop) < 30 and crop != drop


def test_resize_squashes():
    out = run(pipeline_with(None))
    img, lab = resized(inputs())
    np.testing.assert_array_equal(out['img'], img)
    np.testing.assert_array_equal(out['gt_seg_map'], lab)


@pytest.mark.parametrize('step,axis', [('hflip', 1), ('vflip', 0)])
def test_flips(step, axis):
    out = run(pipeline_with(step))
    img, lab = resized(inputs())
    np.testing.assert_array_equal(out['img'], np.flip(img, axis))
    np.testing.assert_array_equal(out['gt_seg_map'], np.flip(lab, axis))


def test_random_resized_crop_keeps_size_and_nearest_labels():
    out = run(pipeline_with('crop', scale=(0.7, 0.7), ratio=(1.0, 1.0)))
    _, lab = resized(inputs())
    assert out['img'].shape == (SIZE, SIZE, 3) and out['gt_seg_map'].shape == (SIZE, SIZE)
    assert set(np.unique(out['gt_seg_map']).tolist()) <= LABEL_VALUES
    assert not np.array_equal(out['gt_seg_map'], lab)


def test_affine_fills_image_zero_and_label_ignore():
    out = run(pipeline_with('affine', rotate=(30, 30), scale=(0.8, 0.8)))
    gt = out['gt_seg_map']
    filled = gt == FILL
    assert filled.sum() > 0.1 * SIZE * SIZE  # corners rotated in, scaled down
    assert set(np.unique(gt).tolist()) <= LABEL_VALUES | {FILL}
    # Same warp, nearest for both: every filled label pixel is a zero image pixel.
    assert (out['img'][filled] == 0).all()
    assert out['img'][~filled].max() > 0


def test_colour_steps_leave_labels_alone():
    _, lab = resized(inputs())
    for step in ('jitter', 'blur', 'brightness_contrast'):
        out = run(pipeline_with(step))
        np.testing.assert_array_equal(out['gt_seg_map'], lab)


def test_blur_sigma():
    out = run(pipeline_with('blur', sigma_limit=(1.5, 1.5)))
    img, _ = resized(inputs())
    k = int(1.5 * 3.5) * 2 + 1
    ref = cv2.GaussianBlur(img, (k, k), 1.5)
    assert np.abs(out['img'].astype(int) - ref).max() <= 1


def test_brightness_and_contrast_factors():
    out = run(pipeline_with('brightness_contrast', brightness=(1.2, 1.2), contrast=(1.0, 1.0)))
    img, _ = resized(inputs())
    ref = np.clip(img * 1.2, 0, 255)
    assert np.abs(out['img'].astype(float) - ref).max() <= 1
    out = run(pipeline_with('brightness_contrast', brightness=(1.0, 1.0), contrast=(0.8, 0.8)))
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).mean()
    ref = np.clip(gray + 0.8 * (img - gray), 0, 255)
    assert np.abs(out['img'].astype(float) - ref).max() <= 1


def test_cutout_box_colour_in_bgr_and_label():
    for seed in range(3):
        out = run(pipeline_with('cutout'), seed=seed)
        box = out['gt_seg_map'] == FILL
        rows, cols = np.flatnonzero(box.any(1)), np.flatnonzero(box.any(0))
        assert len(rows) == 65 and len(cols) == 65
        assert rows[-1] - rows[0] == 64 and cols[-1] - cols[0] == 64 and box.sum() == 65 * 65
        # mmseg images are BGR: the authors' RGB (123, 116, 103) is stored as (103, 116, 123).
        np.testing.assert_array_equal(out['img'][box], np.tile([103, 116, 123], (65 * 65, 1)))
        assert not (out['img'][~box] == [103, 116, 123]).all(1).any()
