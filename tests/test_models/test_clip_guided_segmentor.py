"""CLIP-Guided SAM in the segmentor: the guide's condition reaches the semantic adapters, its dense
prompt SAM's prompt encoder, and points come from the similarity region (semi-automatic mode) or the
ground truth (manual mode), chosen separately for training and test."""
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

import mmsamptx  # noqa: F401

S = 128


def cgs_model(train_cfg=None, test_cfg=None, **overrides):
    """The demo's tiny SAM with CLIP-Guided SAM's adapters and a tiny CLIPSurgery guide."""
    cfg = Config.fromfile('configs/demo/_base_demo.py').model
    cfg.data_preprocessor = None
    cfg.backbone.adapter_cfg = dict(type='SemanticAdapter', text_dims=64, vision_dims=64)
    cfg.backbone.attn_adapter_cfg = dict(type='AttentionAdapter', inner_skip=True)
    cfg.decode_head.frozen_prompt_encoder = False
    cfg.guide = dict(type='CLIPSurgeryGuide', model_name='mmsamptx-tiny-clip', pretrained=None,
                     clip_size=64, surgery_blocks=1)
    cfg.train_cfg = {**dict(num_points=5, background='negative', point_source='similarity'),
                     **(train_cfg or {})}
    cfg.test_cfg = {**dict(mode='prompted', num_points=5, point_source='similarity'),
                    **(test_cfg or {})}
    for k, v in overrides.items():
        cfg[k] = v
    torch.manual_seed(0)
    return MODELS.build(cfg)


def sample(gt=None, **meta):
    ds = SegDataSample(metainfo=dict(dict(ori_shape=(S, S), img_shape=(S, S), img_path='img.jpg'),
                                     **meta))
    if gt is not None:
        ds.gt_sem_seg = PixelData(data=gt[None])
    return ds


def label_map():
    gt = torch.zeros(S, S, dtype=torch.long)
    gt[64:, :64] = 1
    gt[:32, 96:] = 2
    return gt


def test_training_step_reaches_adapters_prompt_encoder_and_guide_attention():
    model = cgs_model(guide=dict(type='CLIPSurgeryGuide', model_name='mmsamptx-tiny-clip',
                                 pretrained=None, clip_size=64, surgery_blocks=1,
                                 finetune_attn_blocks=1))
    seen = {}
    head_forward = model.decode_head.forward

    def spy(emb, points, labels, boxes, text, masks=None):
        seen.update(points=points, masks=masks)
        return head_forward(emb, points, labels, boxes, text, masks=masks)
    model.decode_head.forward = spy
    gt = label_map()
    losses = model.loss(torch.randn(2, 3, S, S), [sample(gt, sample_class=1), sample(gt, sample_class=2)])
    assert set(losses) == {'loss_mask', 'loss_dice', 'loss_iou', 'loss_soft_iou'}
    sum(losses.values()).backward()
    assert seen['masks'].shape == (2, 1, S // 4, S // 4)
    assert set(seen['masks'].unique().tolist()) <= {0.0, 255.0}
    assert seen['points'].shape == (2, 5, 2)
    adapter = model.backbone.blocks[0].adapter
    for p in (adapter.text_proj.weight, adapter.vision_proj.weight,
              model.decode_head.prompt_encoder.mask_downscaling[0].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    attn = [p for n, p in model.guide.named_parameters() if p.requires_grad]
    assert attn and all(p.grad is not None for p in attn)


def test_similarity_points_lie_in_the_guides_point_region():
    model = cgs_model()
    gt = label_map()
    picked = model._training_samples([sample(gt, sample_class=1)])
    img_index, class_ids = picked[0], picked[1]
    x = torch.randn(1, 3, S, S)
    text = model.sample_text(class_ids, [{}])
    _, g = model.guidance(x, img_index, text)
    pts = model._similarity_points(model.train_sampler, g.point_region[0, 0], model._rng, 'x')
    for px, py in pts.long().tolist():
        assert g.point_region[0, 0, py, px]
    flat = torch.zeros(S, S, dtype=torch.bool)  # an undefined map falls back to the whole image
    assert model._similarity_points(model.train_sampler, flat, model._rng, 'flat').shape == (5, 2)


def test_text_mode_reads_no_ground_truth():
    model = cgs_model(test_cfg=dict(mode='text')).eval()
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, S, S), [sample()])[0]  # no gt_sem_seg at all
    assert out.pred_sem_seg.data.shape == (1, S, S)
    assert out.pred_classes.tolist() == [0, 1, 2]


def test_semi_automatic_test_uses_the_ground_truth_only_for_which_classes():
    model = cgs_model().eval()
    x = torch.randn(1, 3, S, S)
    gt = label_map()
    moved = torch.roll(gt, shifts=(17, 23), dims=(0, 1))  # same classes, other places
    with torch.no_grad():
        a = model.predict(x, [sample(gt)])[0]
        b = model.predict(x, [sample(moved)])[0]
    assert a.pred_classes.tolist() == b.pred_classes.tolist() == [0, 1, 2]
    assert torch.equal(a.pred_class_logits, b.pred_class_logits)
    manual = cgs_model(test_cfg=dict(point_source='gt')).eval()
    with torch.no_grad():
        c = manual.predict(x, [sample(gt)])[0]
        d = manual.predict(x, [sample(moved)])[0]
    assert not torch.equal(c.pred_class_logits, d.pred_class_logits)  # GT points moved


def test_bad_guide_settings_are_named():
    with pytest.raises(ValueError, match="point_source='similarity' .* need a CLIP guide"):
        cfg = Config.fromfile('configs/demo/_base_demo.py').model
        cfg.data_preprocessor = None
        cfg.train_cfg = dict(point_source='similarity')
        MODELS.build(cfg)
    with pytest.raises(ValueError, match='takes its text from the guide'):
        cgs_model(text_encoder=dict(type='OpenCLIPTextEncoder', model_name='mmsamptx-tiny-clip'))
    with pytest.raises(ValueError, match='point_source must be one of'):
        cgs_model(test_cfg=dict(point_source='clip'))
    model = cgs_model()
    with pytest.raises(ValueError, match=r'mask prompts must be \(B, 1, 32, 32\), got \(1, 1, 64, 64\)'):
        model.decode_head(torch.randn(1, 256, 8, 8), masks=torch.zeros(1, 1, 64, 64))


def test_deployment_mode_reads_cached_text_features_without_the_text_tower(tmp_path):
    """Table 1's deployment (SAM + CLIP vision): t exported once, the text tower not built."""
    model = cgs_model().eval()
    path = str(tmp_path / 'voc_text.pth')
    model.guide.export_text_features(model.class_names, path)
    deployed = cgs_model(guide=dict(type='CLIPSurgeryGuide', model_name='mmsamptx-tiny-clip',
                                    pretrained=None, clip_size=64, surgery_blocks=1,
                                    text_features=path)).eval()
    assert deployed.guide.text_encoder is None
    n_full = sum(p.numel() for p in model.guide.parameters())
    n_deployed = sum(p.numel() for p in deployed.guide.parameters())
    assert n_deployed == sum(p.numel() for p in model.guide.visual.parameters()) < n_full
    deployed.load_state_dict(model.state_dict(), strict=False)  # the same SAM, adapters and vision
    x = torch.randn(1, 3, S, S)
    with torch.no_grad():
        ref = model.predict(x, [sample(label_map())])[0].pred_class_logits
        out = deployed.predict(x, [sample(label_map())])[0].pred_class_logits
    assert torch.allclose(ref, out, atol=1e-5)
    with pytest.raises(KeyError, match="no text feature for 'zebra'"):
        deployed.guide.encode_text(['zebra'])
    missing = cgs_model(guide=dict(type='CLIPSurgeryGuide', model_name='mmsamptx-tiny-clip',
                                   pretrained=None, clip_size=64, surgery_blocks=1,
                                   text_features=str(tmp_path / 'nope.pth')))  # built: no file read
    with pytest.raises(FileNotFoundError, match='nope.pth does not exist'):
        missing.guide.encode_text(['wall'])


def test_clip_runs_once_per_image_for_every_class_chunk():
    model = cgs_model(test_cfg=dict(mode='text', class_chunk=1)).eval()
    calls = []
    model.guide.visual.conv1.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        out = model.predict(torch.randn(1, 3, S, S), [sample()])[0]
    assert out.pred_classes.tolist() == [0, 1, 2] and calls == [1]  # 3 chunks, one CLIP pass
