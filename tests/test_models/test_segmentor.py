"""The class-prompted segmentor: training samples, both inference modes."""
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmsamptx  # noqa: F401


def tiny_model(**overrides):
    cfg = Config.fromfile('configs/demo/samptx_demo.py').model
    cfg.data_preprocessor = None
    for k, v in overrides.items():
        cfg[k] = v
    return MODELS.build(cfg)


def sample(gt, **meta):
    ds = SegDataSample(metainfo=dict(dict(ori_shape=gt.shape, img_shape=gt.shape,
                                          img_path='x.jpg'), **meta))
    ds.gt_sem_seg = PixelData(data=gt[None])
    return ds


def test_training_samples_pick_k_present_classes_with_points_inside():
    model = tiny_model()
    gt = torch.full((128, 128), 255, dtype=torch.long)
    gt[:64] = 0
    gt[64:, :64] = 2
    gt2 = torch.full((128, 128), 1, dtype=torch.long)
    img_index, class_ids, points, labels, targets = model._training_samples([sample(gt), sample(gt2)])
    assert (labels == 1).all()
    assert img_index.tolist() == [0, 0, 1]
    assert sorted(class_ids[:2].tolist()) == [0, 2] and class_ids[2].item() == 1
    for i, c in enumerate(class_ids.tolist()):
        x, y = points[i, 0].long().tolist()
        assert [gt, gt2][img_index[i]][y, x] == c
        expected = ([gt, gt2][img_index[i]] == c).long()
        expected[[gt, gt2][img_index[i]] == 255] = 255
        assert torch.equal(targets[i], expected)


def test_negative_classes_are_prompted_by_name_with_empty_targets():
    model = tiny_model(train_cfg=dict(classes_per_image=1, num_points=2, negatives_per_image=1))
    gt = torch.zeros(128, 128, dtype=torch.long)        # only class 0 present
    img_index, class_ids, points, labels, targets = model._training_samples([sample(gt)])
    assert class_ids[0] == 0 and class_ids[1] in (1, 2)
    assert (labels[0] == 1).all() and (labels[1] == -1).all()
    assert targets[1].sum() == 0 and targets[0].min() == 1
    losses = model.loss(torch.randn(1, 3, 128, 128), [sample(gt)])
    assert torch.isfinite(sum(losses.values()))
    with pytest.raises(ValueError, match='negatives_per_image > 0 prompts absent classes by name'):
        tiny_model(backbone=dict(type='SAMImageEncoder', arch='tiny', img_size=128),
                   text_encoder=None, train_cfg=dict(negatives_per_image=1))


def test_loss_and_both_inference_modes_run():
    torch.manual_seed(0)
    model = tiny_model()
    inputs = torch.randn(2, 3, 128, 128)
    gt = torch.zeros(128, 128, dtype=torch.long)
    gt[30:90, 30:90] = 1
    losses = model.loss(inputs, [sample(gt), sample(gt)])
    assert set(losses) == {'loss_mask', 'loss_dice', 'loss_iou', 'loss_soft_iou'}  # the authors' loss
    sum(losses.values()).backward()
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs[:1], [sample(gt, ori_shape=(100, 100), scale_factor=(1.28, 1.28))])
        assert out[0].pred_sem_seg.data.shape == (1, 100, 100)
        assert set(out[0].pred_sem_seg.data.unique().tolist()) <= {0, 1}   # only prompted classes
        model.test_cfg['mode'] = 'text'
        out = model.predict(inputs[:1], [SegDataSample(metainfo=dict(ori_shape=(128, 128),
                                                                    img_shape=(128, 128)))])
        assert set(out[0].pred_sem_seg.data.unique().tolist()) <= {0, 1, 2}


def test_decoder_only_model_gets_one_encoder_pass_per_image():
    model = tiny_model(backbone=dict(type='SAMImageEncoder', arch='tiny', img_size=128),
                       text_encoder=None)
    calls = []
    model.backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    gt = torch.zeros(128, 128, dtype=torch.long)
    gt[:, 64:] = 2
    model.loss(torch.randn(2, 3, 128, 128), [sample(gt), sample(gt)])
    assert calls == [2]  # 2 images, 4 (image, class) samples, one batched pass


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="test_cfg.mode='text' needs a model that reads text"):
        tiny_model(backbone=dict(type='SAMImageEncoder', arch='tiny', img_size=128),
                   text_encoder=None, test_cfg=dict(mode='text'))
    with pytest.raises(ValueError, match='reads text .* but has no text_encoder'):
        tiny_model(text_encoder=None)
    with pytest.raises(ValueError, match="class_names='NoSuchDataset' is neither"):
        tiny_model(class_names='NoSuchDataset')
    model = tiny_model()
    gt = torch.zeros(128, 128, dtype=torch.long)
    gt[0, 0] = 7
    with pytest.raises(ValueError, match=r'label value 7 in a\.png is outside the 3 classes'):
        model.loss(torch.randn(1, 3, 128, 128), [sample(gt, seg_map_path='a.png')])
    ds = SegDataSample(metainfo=dict(ori_shape=(128, 128), img_shape=(128, 128)))
    with pytest.raises(ValueError, match='loads none: add LoadAnnotations'):
        model.predict(torch.randn(1, 3, 128, 128), [ds])


def test_points_outside_the_image_are_rejected():
    model = tiny_model()
    emb = torch.randn(1, 256, 8, 8)
    with pytest.raises(ValueError, match=r'point \[130.0, 5.0\] .* outside the 128x128 input image'):
        model.decode_head(emb, torch.tensor([[[130., 5.]]]), None, None, torch.randn(1, 64))


def test_class_without_pixels_has_no_points():
    from mmsamptx.models.segmentors import PointSampler
    with pytest.raises(ValueError, match='class 3 of img.jpg has no pixels'):
        PointSampler(1).sample(torch.zeros(4, 4, dtype=torch.bool), torch.Generator(), 'class 3 of img.jpg')


def tiny_model_with_text_in_last_two_blocks():
    """The demo model with text adapters (non-zero output) in blocks 2 and 3 of 4 only."""
    torch.manual_seed(0)
    model = tiny_model()
    model.backbone = MODELS.build(dict(type='SAMImageEncoder', arch='tiny', img_size=128, adapter_cfg=dict(
        type='ParallelTextAdapter', text_dims=64, bottleneck=8, blocks=[2, 3])))
    for blk in model.backbone.blocks[2:]:
        torch.nn.init.normal_(blk.adapter.up.weight, std=0.1)
    return model


def test_shared_early_blocks_equal_per_sample_encoding():
    """Text only in the last k blocks: the first blocks run once per image, with the same result."""
    model = tiny_model_with_text_in_last_two_blocks()
    assert model.backbone.first_conditioned_block == 2
    calls = []
    model.backbone.blocks[0].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    x, idx, text = torch.randn(2, 3, 128, 128), torch.tensor([0, 0, 0, 1]), torch.randn(4, 64)
    with torch.no_grad():
        shared = model.encode_samples(x, idx, text)
        full = model.neck(model.backbone(x[idx], text))[0]
    assert calls[0] == 2                      # block 0 saw 2 images, not 4 samples
    assert (shared - full).abs().max() <= 1e-5


def test_text_mode_runs_the_shared_blocks_once_per_image_for_every_class_chunk():
    """Chunking the vocabulary changes neither the answer nor the number of shared passes."""
    model = tiny_model_with_text_in_last_two_blocks()
    model.eval()
    calls = []
    model.backbone.blocks[0].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    x = torch.randn(1, 3, 128, 128)
    maps, logits = {}, {}
    for chunk in (1, len(model.class_names)):
        model.test_cfg.update(mode='text', class_chunk=chunk)
        calls.clear()
        with torch.no_grad():
            meta = dict(ori_shape=(128, 128), img_shape=(128, 128))
            out = model.predict(x, [SegDataSample(metainfo=meta)])[0]
        maps[chunk], logits[chunk] = out.pred_sem_seg.data, out.pred_class_logits
        assert calls == [1]  # block 0 ran once for the image, not once per chunk
    every = len(model.class_names)
    # the same per-class logits up to float rounding (batches of 1 and of 3 take other kernels) ...
    assert torch.allclose(logits[1], logits[every], atol=1e-4)
    # ... so the map only differs at near-ties between classes (5 of 16,384 pixels measured)
    assert (maps[1] != maps[every]).float().mean() < 1e-3


def test_bf16_autocast_encoder_stays_close_to_fp32():
    torch.manual_seed(0)
    model = tiny_model()
    x, idx, text = torch.randn(1, 3, 128, 128), torch.tensor([0, 0]), torch.randn(2, 64)
    with torch.no_grad():
        ref = model.encode_samples(x, idx, text)
        model.backbone.autocast_dtype = 'bfloat16'
        low = model.encode_samples(x, idx, text)
    assert low.dtype == torch.float32
    assert 0 < (low - ref).abs().max() <= 0.05 * ref.abs().max()


def test_class_names_that_do_not_match_the_dataset_are_refused():
    from mmsamptx.engine import check_class_names

    class Data:
        metainfo = dict(classes=('wall', 'plate', 'tray'))

    check_class_names(['wall', 'plate', 'tray'], Data(), 'training')
    with pytest.raises(ValueError, match=r"first difference at label 1: model 'cup', dataset 'plate'"):
        check_class_names(['wall', 'cup', 'tray'], Data(), 'training')
    with pytest.raises(ValueError, match=r'class_names \(2\) do not match the test dataset.s classes \(3'):
        check_class_names(['wall', 'plate'], Data(), 'test')


def test_bf16_autocast_decoder_keeps_float32_weights_outputs_and_gradients():
    torch.manual_seed(0)
    model = tiny_model()
    head = model.decode_head
    emb, pts = torch.randn(2, 256, 8, 8), torch.tensor([[[20., 30.]], [[90., 100.]]])
    text = torch.randn(2, 64)
    with torch.no_grad():
        ref_logits, ref_iou = head(emb, pts, None, None, text)
    seen = []
    head.mask_decoder.transformer.final_attn_token_to_image.out_proj.register_forward_hook(
        lambda m, i, o: seen.append(o.dtype))
    head.autocast_dtype = 'bfloat16'
    logits, iou = head(emb, pts, None, None, text)
    assert seen == [torch.bfloat16]             # the decoder ran under autocast
    assert logits.dtype == iou.dtype == torch.float32
    assert 0 < (logits - ref_logits).abs().max() <= 0.05 * ref_logits.abs().max()
    targets = (torch.rand(2, 128, 128) > 0.5).long()
    sum(head.loss(logits, iou, targets).values()).backward()
    grads = {n: p.grad for n, p in head.named_parameters() if p.requires_grad}
    assert grads and all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all()
                         for g in grads.values())
    assert all(p.dtype == torch.float32 for p in head.parameters())
    # None adds no autocast of its own, nor switches off an outer one (mmengine's AmpOptimWrapper)
    head.autocast_dtype, seen[:] = None, []
    head(emb, pts, None, None, text)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        head(emb, pts, None, None, text)
    assert seen == [torch.float32, torch.bfloat16]


def test_decoder_autocast_and_loss_size_values_are_checked():
    from mmsamptx.models.heads import SAMPromptableHead
    with pytest.raises(ValueError, match="float16 without a gradient scaler.*AmpOptimWrapper"):
        SAMPromptableHead(image_size=128, autocast_dtype='float16')
    with pytest.raises(ValueError, match=r"autocast_dtype must be one of \(None, 'auto', 'bfloat16'\), "
                                         "got 'fp8'"):
        SAMPromptableHead(image_size=128, autocast_dtype='fp8')
    with pytest.raises(ValueError, match="loss_size must be one of \\('input', 'mask'\\), got 'full'"):
        SAMPromptableHead(image_size=128, loss_size='full')


def test_loss_at_mask_size_samples_targets_at_pixel_centres():
    from mmsamptx.models.heads.sam_promptable_head import resize_targets
    torch.manual_seed(0)
    small = torch.randint(0, 3, (2, 32, 32))
    small[small == 2] = 255                       # ignored pixels survive as they are
    big = torch.randint(0, 2, (2, 128, 128))      # noise everywhere but the 4x4 block centres
    big[:, 2::4, 2::4] = small
    assert torch.equal(resize_targets(big, (32, 32)), small)
    head = tiny_model(decode_head=dict(type='SAMPromptableHead', image_size=128,
                                       loss_size='mask')).decode_head
    logits, iou = torch.randn(2, 1, 32, 32), torch.rand(2, 1)
    at_mask = head.loss(logits, iou, big)
    head.loss_size = 'input'
    same = head.loss(logits, iou, small)          # targets already at the logits' size
    for k in at_mask:
        assert torch.allclose(at_mask[k], same[k]), k
    assert not torch.allclose(head.loss(logits, iou, big)['loss_mask'], at_mask['loss_mask'])


def test_present_labels_equal_unique_and_name_negative_labels():
    from mmsamptx.models.segmentors.class_prompted_sam import present_labels
    gt = torch.randint(0, 150, (64, 64))
    gt[:4] = 255
    unique = gt.unique()
    assert torch.equal(present_labels(gt), unique[unique != 255])
    assert torch.equal(present_labels(gt, ignore_index=-1), unique)
    assert present_labels(gt[:0]).numel() == 0
    neg = gt.clone()
    neg[:4] = -1                                   # a negative ignore value is dropped first
    assert torch.equal(present_labels(neg, ignore_index=-1), unique[unique != 255])
    neg[5, 5] = -3
    with pytest.raises(ValueError, match=r'negative label value -3 in b\.png \(ignore_index is -1\)'):
        present_labels(neg, -1, 'b.png')
