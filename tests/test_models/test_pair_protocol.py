"""The authors' protocol in the segmentor: one (image, class) pair per item, every other pixel a
negative, 5 points drawn with replacement on the decoder's grid, per-class logits for the metric."""
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmsamptx  # noqa: F401
from mmsamptx.models.segmentors.class_prompted_sam import resize_label_map
from mmsamptx.models.segmentors.point_sampler import PointSampler

S = 128  # tiny input side; the decoder's grid is S / 4 = 32


def tiny_model(train_cfg=None, test_cfg=None, **overrides):
    cfg = Config.fromfile('configs/demo/samptx_demo.py').model
    cfg.data_preprocessor = None
    cfg.train_cfg = {**dict(num_points=5, point_grid='mask', background='negative'), **(train_cfg or {})}
    cfg.test_cfg = {**dict(mode='prompted', num_points=5, point_grid='mask'), **(test_cfg or {})}
    for k, v in overrides.items():
        cfg[k] = v
    return MODELS.build(cfg)


def sample(gt, **meta):
    ds = SegDataSample(metainfo=dict(dict(ori_shape=tuple(gt.shape), img_shape=(S, S),
                                          img_path='img.jpg'), **meta))
    ds.gt_sem_seg = PixelData(data=gt[None])
    return ds


def label_map():
    gt = torch.full((S, S), 255, dtype=torch.long)
    gt[:64] = 0
    gt[64:, :40] = 2
    gt[100:, 100:] = 1
    return gt


def test_one_pair_per_item_with_every_other_pixel_negative():
    model = tiny_model()
    gt = label_map()
    items = [sample(gt, sample_class=2), sample(gt, sample_class=0), sample(gt, sample_class=1)]
    img_index, class_ids, points, labels, targets = model._training_samples(items)
    assert img_index.tolist() == [0, 1, 2]
    assert class_ids.tolist() == [2, 0, 1]
    assert points.shape == (3, 5, 2) and (labels == 1).all()
    for i, c in enumerate(class_ids.tolist()):
        # ignore (255) and every other class are 0: no ignore value left in the target
        assert torch.equal(targets[i], (gt == c).long())
        for x, y in points[i].long().tolist():
            assert gt[y, x] == c  # inside the class (nearest-upsampled from the 32² grid)


def test_background_ignore_keeps_the_ignore_label():
    model = tiny_model(train_cfg=dict(background='ignore'))
    gt = label_map()
    *_, targets = model._training_samples([sample(gt, sample_class=2)])
    expected = (gt == 2).long()
    expected[gt == 255] = 255
    assert torch.equal(targets[0], expected)


def test_a_pair_whose_class_left_the_augmented_target_is_skipped():
    model = tiny_model()
    gt = label_map()
    gt2 = gt.clone()
    gt2[gt2 == 1] = 255  # class 1 cropped away
    picked = model._training_samples([sample(gt2, sample_class=1), sample(gt, sample_class=2)])
    assert picked[0].tolist() == [1] and picked[1].tolist() == [2]
    assert model._training_samples([sample(gt2, sample_class=1)]) is None
    losses = model.loss(torch.randn(1, 3, S, S), [sample(gt2, sample_class=1)])
    assert sum(losses.values()).item() == 0.0
    model.decode_head.loss_weights['soft_iou'] = 1.0  # the authors' loss logs its soft-IoU term
    assert set(model.loss(torch.randn(1, 3, S, S), [sample(gt2, sample_class=1)])) == {
        'loss_mask', 'loss_dice', 'loss_iou', 'loss_soft_iou'}


def test_points_on_the_mask_grid_are_uniform_over_the_upsampled_mask():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2, 3] = True  # one coarse cell: every draw must fall in its 4 x 4 block
    pts = PointSampler(200).sample(mask, torch.Generator().manual_seed(0), stride=4)
    x, y = pts[:, 0], pts[:, 1]
    assert ((x >= 12) & (x < 16) & (y >= 8) & (y < 12)).all()
    assert len({(a, b) for a, b in pts.long().tolist()}) == 16  # all 16 pixels reached
    # with replacement: 5 draws from a 1-pixel mask repeat it
    one = PointSampler(5).sample(torch.eye(4, dtype=torch.bool)[:1], torch.Generator().manual_seed(1))
    assert one.shape == (5, 2) and (one[:, 1] == 0).all()


def test_same_seed_same_points_train_and_test():
    gt = label_map()
    a = tiny_model()._training_samples([sample(gt, sample_class=2)])[2]
    b = tiny_model()._training_samples([sample(gt, sample_class=2)])[2]
    assert torch.equal(a, b)
    m = tiny_model()
    p1 = m._prompted_classes(sample(gt))[1]
    p2 = tiny_model()._prompted_classes(sample(gt))[1]
    assert all(torch.equal(u, v) for u, v in zip(p1, p2)) and len(p1) == 3


def test_prediction_carries_per_class_logits_on_the_decoder_grid():
    torch.manual_seed(0)
    model = tiny_model().eval()
    gt = torch.zeros(200, 150, dtype=torch.long)  # original size; squashed to S x S
    gt[:, 75:] = 2
    gt[:20, :20] = 255
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, S, S), [sample(gt)])[0]
    assert out.pred_classes.tolist() == [0, 2]
    assert out.pred_class_logits.shape == (2, S // 4, S // 4)
    assert out.pred_sem_seg.data.shape == (1, 200, 150)
    assert 'pred_prob' not in out


def test_target_classes_background_class_and_probability_map():
    torch.manual_seed(0)
    model = tiny_model(test_cfg=dict(target_classes=[2], background_class=0)).eval()
    gt = torch.zeros(S, S, dtype=torch.long)
    gt[:, 64:] = 2
    gt[:10] = 1
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, S, S), [sample(gt)])[0]
    assert out.pred_classes.tolist() == [2]            # classes 0 and 1 not prompted
    assert set(out.pred_sem_seg.data.unique().tolist()) <= {0, 2}
    prob = out.pred_prob.data[0]
    assert prob.shape == (S, S) and 0 <= prob.min() and prob.max() <= 1
    # pixels given class 2 are exactly those of positive logit, i.e. probability > 0.5
    assert torch.equal(out.pred_sem_seg.data[0] == 2, prob > 0.5)
    with pytest.raises(ValueError, match='background_class=9 is not a class id'):
        tiny_model(test_cfg=dict(background_class=9))
    with pytest.raises(ValueError, match="point_grid must be one of"):
        tiny_model(test_cfg=dict(point_grid='bad'))
    with pytest.raises(ValueError, match="train_cfg.background must be one of"):
        tiny_model(train_cfg=dict(background='bad'))


def test_text_key_reads_each_images_own_text():
    model = tiny_model(text_key='class_name')
    seen = []
    encode = model.text_encoder.encode
    model.text_encoder.encode = lambda names: seen.append(list(names)) or encode(names)
    gt = label_map()
    model.loss(torch.randn(2, 3, S, S), [sample(gt, sample_class=2, class_name='LeafySeaDragon'),
                                         sample(gt, sample_class=0, class_name='Camouflaged object')])
    assert seen == [['LeafySeaDragon', 'Camouflaged object']]
    with pytest.raises(ValueError, match="text_key='class_name': no such metainfo key"):
        model.loss(torch.randn(1, 3, S, S), [sample(gt, sample_class=2)])


def test_resize_label_map_is_nearest():
    lab = torch.arange(16).view(4, 4)
    assert resize_label_map(lab, (2, 2)).tolist() == [[0, 2], [8, 10]]
