"""ClassWiseIoUMetric against hand computations on small arrays."""
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmseg.registry import METRICS
from PIL import Image

import mmsamptx  # noqa: F401


def sample(logits, classes, gt):
    """A data sample as the evaluator hands it to metrics (``to_dict()`` form)."""
    return dict(pred_class_logits=torch.as_tensor(logits, dtype=torch.float32),
                pred_classes=torch.as_tensor(classes),
                gt_sem_seg=dict(data=torch.as_tensor(np.asarray(gt)[None], dtype=torch.uint8)))


def logits_of(mask):
    """+1 where mask is True, -1 elsewhere."""
    return np.where(np.asarray(mask, bool), 1.0, -1.0)


def test_hand_computation_mask_size():
    gt_a = np.array([[1, 1, 2, 2],
                     [1, 1, 2, 2],
                     [255, 255, 0, 0],
                     [255, 255, 0, 0]])
    gt_b = np.array([[1, 1, 1, 1],
                     [0, 0, 0, 0],
                     [0, 0, 0, 0],
                     [0, 0, 0, 0]])
    # Sample A: classes 1 and 2 prompted. Class 1 predicted on the left half
    # (I 4, U 8: the ignore pixels count as negatives); class 2 exactly (I 4, U 4).
    pa = np.stack([logits_of(np.arange(16).reshape(4, 4) % 4 < 2), logits_of(gt_a == 2)])
    # Sample B: class 1 predicted on its first row, two pixels only -> I 2, U 4.
    pb1 = np.zeros((4, 4), bool)
    pb1[0, :2] = True
    # Sample C: class 3 prompted, neither predicted nor present: U = 0, left out.
    pc = logits_of(np.zeros((1, 4, 4), bool))
    metric = METRICS.build(dict(type='ClassWiseIoUMetric'))
    metric.dataset_meta = dict(classes=('bg', 'a', 'b', 'c'))
    metric.process({}, [sample(pa, [1, 2], gt_a), sample(logits_of(pb1)[None], [1], gt_b),
                        sample(pc, [3], gt_b)])
    res = metric.evaluate(3)
    iou1 = (4 + 2) / (8 + 4 + 1e-10)
    iou2 = 4 / (4 + 1e-10)
    assert list(res) == ['classwise/mIoU']
    assert res['classwise/mIoU'] == pytest.approx((iou1 + iou2) / 2 * 100)


def test_class_in_some_images_only_and_gt_resized_to_logits():
    # 8x8 label, 4x4 logits: the label is squashed with pixel-centre nearest,
    # i.e. rows/columns 1, 3, 5, 7 are kept.
    gt = np.zeros((8, 8), np.uint8)
    gt[1, 1] = 5  # kept by the pixel-centre rule (-> (0, 0))
    gt[0, 2] = 5  # dropped
    small = np.zeros((4, 4), bool)
    small[0, 0] = True
    gt_no5 = np.zeros((8, 8), np.uint8)
    m = METRICS.build(dict(type='ClassWiseIoUMetric', prefix='val'))
    m.process({}, [sample(logits_of(small)[None], [5], gt),
                   sample(logits_of(small)[None], [0], gt_no5)])
    res = m.evaluate(2)
    # class 5: I 1 U 1; class 0: gt all of 4x4 = 16, pred 1 pixel -> I 1, U 16.
    assert res['val/mIoU'] == pytest.approx((1.0 + 1 / 16) / 2 * 100)
    legacy = METRICS.build(dict(type='ClassWiseIoUMetric', gt_interpolation='nearest'))
    legacy.process({}, [sample(logits_of(small)[None], [5], gt)])
    # torch 'nearest' keeps rows/columns 0, 2, 4, 6: (0, 2) -> (0, 1); pred (0, 0): I 0, U 2.
    assert legacy.evaluate(1)['classwise/mIoU'] == 0.0


def test_pixel_centre_rule_matches_pil_nearest():
    from mmsamptx.evaluation.class_wise_iou_metric import resize_labels
    rng = np.random.RandomState(0)
    lab = rng.randint(0, 5, (683, 517)).astype(np.uint8)
    ours = resize_labels(torch.from_numpy(lab), (256, 256), 'nearest-exact').numpy()
    pil = np.asarray(Image.fromarray(lab).resize((256, 256), Image.NEAREST))
    np.testing.assert_array_equal(ours, pil)


def test_full_size_upsamples_logits():
    gt = np.zeros((4, 4), np.uint8)
    gt[:, :2] = 1
    logits = torch.tensor([[[3.0, -3.0], [3.0, -3.0]]])  # bilinear -> positive on the left half
    m = METRICS.build(dict(type='ClassWiseIoUMetric', size='full'))
    m.process({}, [sample(logits, [1], gt)])
    assert m.evaluate(1)['classwise/mIoU'] == pytest.approx(100.0)
    # At the mask size the same label squashes to 2x2 and agrees as well.
    m = METRICS.build(dict(type='ClassWiseIoUMetric', size='mask'))
    m.process({}, [sample(logits, [1], gt)])
    assert m.evaluate(1)['classwise/mIoU'] == pytest.approx(100.0)
    up = torch.nn.functional.interpolate(torch.tensor([[[[1.0, -3.0], [1.0, -3.0]]]]),
                                         size=(4, 4), mode='bilinear', align_corners=False)
    # Column 1 of the upsampled map: 0.25 * 1 + 0.75 * ... -> negative, so only column 0 is set.
    assert (up[0, 0, 0] > 0).tolist() == [True, False, False, False]
    m = METRICS.build(dict(type='ClassWiseIoUMetric', size='full'))
    m.process({}, [sample(torch.tensor([[[1.0, -3.0], [1.0, -3.0]]]), [1], gt)])
    assert m.evaluate(1)['classwise/mIoU'] == pytest.approx(4 / 8 * 100)


def test_evaluator_and_errors():
    evaluator = Evaluator([dict(type='ClassWiseIoUMetric'),
                           dict(type='ClassWiseIoUMetric', size='full', prefix='full')])
    gt = np.ones((4, 4), np.uint8)
    evaluator.process([sample(logits_of(np.ones((1, 4, 4))), [1], gt)])
    assert evaluator.evaluate(1) == {'classwise/mIoU': pytest.approx(100.0),
                                     'full/mIoU': pytest.approx(100.0)}
    with pytest.raises(ValueError, match="size must be one of"):
        METRICS.build(dict(type='ClassWiseIoUMetric', size='input'))
    m = METRICS.build(dict(type='ClassWiseIoUMetric'))
    with pytest.raises(ValueError, match=r'K = len\(pred_classes\) = 2'):
        m.process({}, [sample(np.zeros((1, 4, 4)), [1, 2], gt)])
    with pytest.raises(KeyError, match='pred_class_logits'):
        m.process({}, [dict(gt_sem_seg=dict(data=torch.zeros(1, 4, 4)))])
