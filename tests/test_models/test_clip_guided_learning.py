"""Learning, honestly: CLIP-Guided SAM against SAM-PTx, both without any point at test.

The task (:func:`mmsamptx.demo.make_colour_shapes`): two or three shapes per
image whose class is their colour word (``red``, ``green``, ``blue``), at
random places on a textured wall; the class name says *what*, never *where*.

1. **A tiny CLIP trained here.** An open_clip ViT with 8-pixel patches and 2
   visual layers (an 8x8 token grid at the guide's 64² input; config written
   below and registered with ``open_clip.add_model_config``) and its text tower
   are trained contrastively for ``CLIP_STEPS`` steps on the training images:
   every patch token, computed by ``CLIPSurgeryGuide.encode_image`` (the
   CLIPSurgery path the guide runs at test), against the texts of the three
   colours and ``wall`` (InfoNCE over the four texts, the patch's pixel
   fractions as soft targets). The text feature is the guide's chain, bare
   name minus the redundant feature, normalised, with gradients. The weights
   are saved in open_clip's key format and loaded through ``pretrained=<path>``
   by ``CLIPSurgeryGuide`` (``visual.*`` keys) and ``OpenCLIPTextEncoder``
   (text keys). Checked: the held-out similarity map's maximum lies on the
   prompted class.
2. **Two models**, the demo's tiny SAM (frozen random trunk), trained with
   mmengine's Runner for ``ITERS`` iterations each, same schedule and seed:
   CLIP-Guided SAM (semantic + attention adapters, the guide's dense prompt,
   trainable prompt encoder, CLIP frozen) with 5 points drawn from the
   similarity region at training, as at test; SAM-PTx (Parallel-Text +
   attention adapters, text from the same CLIP's text tower, bare name) trained
   prompt-free (no point; absent classes as empty targets): its strongest
   text-only form here. SAM-PTx trained with 5 GT points as published scored
   far lower text-only (2.0 against 32.8, measured once) and is left out to
   keep the suite's time.
3. **Text-only evaluation** on held-out images, no ground-truth point anywhere.
   CLIP-Guided SAM: ``test_cfg`` ``mode='prompted'``, ``point_source=
   'similarity'``: the ground truth says only which classes the image holds
   (the paper's image-level prompts), points and dense prompt come from CLIP.
   SAM-PTx text-only means the class name alone and no point, SAM-PTx's
   ``mode='text'``, scored on the same (image, present class) pairs. Both are
   scored by ``ClassWiseIoUMetric`` (the authors' class-wise mIoU; absent
   classes are not queried, as in the paper). CLIP-Guided SAM must beat
   SAM-PTx by the asserted margin.

Not asserted: the paper's train-test consistency (trained with similarity
points beats trained with GT points, both tested with similarity points).
On this task it does not show: with this CLIP the two are within about 2
mIoU points either way. With look-alike distractors
(``make_colour_shapes(..., lookalikes=2)``) and a weaker CLIP (20 steps) it
shows in all five seeds measured, but by 1.4 to 8.8 points while the seed
moves either score by 30, and it needs its own CLIP and two more runs
(docs/clip_guided_sam.md, "Learning test", has the table and the snippet):
too thin and too slow to assert, so the model trained with GT points is not
part of this test.

Measured (ITERS = 200, CPU, seed 0; the whole file was run once): see docs/clip_guided_sam.md,
"Learning test". The margins asserted below are the measured gaps less a
safety margin.
"""
import glob
import json
import logging
import os.path as osp

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from PIL import Image

from mmsamptx.demo import COLOUR_CLASSES, make_colour_shapes
from mmsamptx.demo.colour_shapes import colour_shapes_sample
from mmsamptx.evaluation import ClassWiseIoUMetric
from mmsamptx.models.guides import CLIPSurgeryGuide
from mmsamptx.models.text_encoders.open_clip_text_encoder import OPENAI_IMAGENET_PROMPTS

CLIP_NAME = 'mmsamptx-tiny-clip-p8'
CLIP_CFG = dict(embed_dim=64,
                vision_cfg=dict(image_size=64, layers=2, width=64, head_width=32, patch_size=8),
                text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=2, layers=2))
CLIP_SIZE = 64    # guide input side: an 8x8 grid of 16x16-pixel cells of the 128² image
CLIP_STEPS = 60   # contrastive steps of 16 images; the loss has flattened by then
ITERS = 200       # segmentor iterations, batch 4 (the demo's)
SEED = 0
# SAM's normalisation: the guide reads SAM's input, not CLIP's mean/std (clip-guided-sam.md §2.2)
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1)

LOCALISED = 0.8   # held-out (image, class) pairs whose similarity maximum is on the class; measured 0.92
TEXT_MARGIN = 15.0  # mIoU points; measured gap to the better SAM-PTx about 29 (77 vs 48)


def load_split(data_root, subset):
    """(B, 3, S, S) SAM-normalised images and (B, S, S) labels (0 wall, i + 1 class i)."""
    images, labels = [], []
    for path in sorted(glob.glob(osp.join(data_root, 'images', subset, '*.jpg'))):
        images.append(np.asarray(Image.open(path).convert('RGB')))
        ann = path.replace(osp.join('images', subset), osp.join('annotations', subset))
        labels.append(np.asarray(Image.open(ann[:-len('.jpg')] + '.png')))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
    return (x - MEAN) / STD, torch.from_numpy(np.stack(labels)).long()


def patch_targets(labels, grid):
    """(B, S, S) labels -> (B, N, K + 1) pixel fractions per patch: the K classes, then the wall."""
    onehot = F.one_hot(labels, len(COLOUR_CLASSES) + 1).permute(0, 3, 1, 2).float()
    frac = F.adaptive_avg_pool2d(onehot, grid).flatten(2)  # (B, 1 + K, N), wall first
    return torch.cat([frac[:, 1:], frac[:, :1]], dim=1).transpose(1, 2)


def train_clip(data_root, path):
    """Train the tiny CLIP contrastively on the training images; save it (open_clip keys) to path."""
    torch.manual_seed(SEED)
    clip = open_clip.create_model(CLIP_NAME)
    tokenizer = open_clip.get_tokenizer(CLIP_NAME)
    # the guide's own image path (resize, CLIPSurgery last block, ln_post, proj) on the trained tower
    guide = CLIPSurgeryGuide(model_name=CLIP_NAME, pretrained=None, clip_size=CLIP_SIZE,
                             surgery_blocks=1)
    guide.visual = clip.visual
    names = tokenizer(list(COLOUR_CLASSES) + ['wall'])
    empty = tokenizer([t.format('') for t in OPENAI_IMAGENET_PROMPTS])

    def text_features():  # the guide's t: (t_raw - r) / |t_raw - r|, r the unit mean of "" prompts
        raw = clip.encode_text(names, normalize=False)
        r = F.normalize(F.normalize(clip.encode_text(empty, normalize=False), dim=-1)
                        .mean(0, keepdim=True), dim=-1)
        return F.normalize(raw - r, dim=-1)

    images, labels = load_split(data_root, 'training')
    targets = patch_targets(labels, guide.grid)
    params = [p for n, p in clip.named_parameters() if n != 'logit_scale']
    optimizer = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(CLIP_STEPS):
        idx = torch.randint(len(images), (16, ), generator=gen)
        tokens = F.normalize(guide.encode_image(images[idx])[:, 1:], dim=-1)  # (16, N, C)
        logits = tokens @ text_features().T / 0.07  # (16, N, K + 1)
        loss = -(targets[idx] * logits.log_softmax(-1)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.save(clip.state_dict(), path)
    with torch.no_grad():
        return text_features()[:len(COLOUR_CLASSES)]


def localisation(data_root, path):
    """Share of held-out (image, present class) pairs whose similarity maximum lies on the class,
    and the share of the point region's pixels that do, through a guide loaded from ``path``."""
    guide = CLIPSurgeryGuide(model_name=CLIP_NAME, pretrained=path, clip_size=CLIP_SIZE,
                             surgery_blocks=1)
    guide.init_weights()
    images, labels = load_split(data_root, 'validation')
    hits, inside = [], []
    with torch.no_grad():
        for image, label in zip(images, labels):
            for c in label.unique().tolist():
                if c == 0:
                    continue
                g = guide(image[None], [COLOUR_CLASSES[c - 1]])
                hits.append(float(label.flatten()[g.sim_map.flatten().argmax()] == c))
                inside.append((label[g.point_region[0, 0]] == c).float().mean().item())
    return float(np.mean(hits)), float(np.mean(inside)), guide


def model_cfg(work_dir, data_root, clip_path, method, train_points):
    cfg = Config.fromfile('configs/demo/_base_demo.py')
    cfg.work_dir = str(work_dir)
    for loader in ('train_dataloader', 'test_dataloader'):
        ds = cfg[loader].dataset
        # ADE20K's layout, but colour classes: BaseSegDataset has no class list to map from
        ds.update(type='BaseSegDataset', data_root=data_root, img_suffix='.jpg',
                  seg_map_suffix='.png', reduce_zero_label=True,
                  metainfo=dict(classes=COLOUR_CLASSES))
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.test_evaluator = dict(type='ClassWiseIoUMetric')
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=ITERS)
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=1e-5, power=1.0, by_epoch=False, begin=0,
                                end=ITERS)]
    cfg.default_hooks.logger.interval = 100
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.pop('visualization')
    cfg.log_level = 'WARNING'
    cfg.randomness = dict(seed=SEED)
    model = cfg.model
    model.class_names = COLOUR_CLASSES
    if method == 'cgs':
        model.backbone.adapter_cfg = dict(type='SemanticAdapter', text_dims=64, vision_dims=64)
        model.backbone.attn_adapter_cfg = dict(type='AttentionAdapter', inner_skip=True)
        model.decode_head.frozen_prompt_encoder = False
        model.guide = dict(type='CLIPSurgeryGuide', model_name=CLIP_NAME, pretrained=clip_path,
                           clip_size=CLIP_SIZE, surgery_blocks=1)
        model.train_cfg = dict(classes_per_image=2, num_points=5, background='negative',
                               point_source=train_points)
        model.test_cfg = dict(mode='prompted', num_points=5, point_source='similarity')
    else:  # SAM-PTx, its text from the same CLIP's text tower (bare name, L2-normalised)
        model.backbone.adapter_cfg = dict(type='ParallelTextAdapter', text_dims=64, ratio=0.25,
                                          scale=0.5, zero_init=False, text_input='tokens')
        model.backbone.attn_adapter_cfg = dict(type='AttentionAdapter', ratio=0.25, scale=0.5,
                                               inner_skip=True)
        model.text_encoder = dict(type='OpenCLIPTextEncoder', model_name=CLIP_NAME,
                                  pretrained=clip_path, templates=('{}', ),
                                  ensemble_normalize=False, normalize=True)
        # num_points=0: prompt-free, every class a sample whether present or not
        model.train_cfg = dict(classes_per_image=2, num_points=5 if train_points == 'gt' else 0,
                               background='negative', target_classes=[0, 1, 2])
        model.test_cfg = dict(mode='text')
    return cfg


def train_and_score(cfg):
    """Train with the Runner; class-wise mIoU over the held-out (image, present class) pairs."""
    runner = Runner.from_cfg(cfg)
    runner.train()
    model = runner.model.eval()
    metric = ClassWiseIoUMetric()
    with torch.no_grad():
        for batch in runner.test_dataloader:
            for ds in model.test_step(batch):
                gt = ds.gt_sem_seg.data[0]
                keep = torch.isin(ds.pred_classes, gt.unique())  # text mode prompted every class
                metric.process({}, [dict(pred_class_logits=ds.pred_class_logits[keep],
                                         pred_classes=ds.pred_classes[keep],
                                         gt_sem_seg=dict(data=gt))])
    miou = metric.compute_metrics(metric.results)['mIoU']
    MMLogger.get_current_instance().setLevel(logging.INFO)
    return miou


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    # Models this small gain nothing from intra-op threads, and on a shared machine the threads'
    # spinning made the file several times slower; one thread, restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield _results(tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _results(tmp_path_factory):
    root = tmp_path_factory.mktemp('clip_guided_learning')
    (root / 'clip_cfg').mkdir()
    (root / 'clip_cfg' / f'{CLIP_NAME}.json').write_text(json.dumps(CLIP_CFG))
    open_clip.add_model_config(str(root / 'clip_cfg'))
    data_root = make_colour_shapes(str(root / 'data'))
    clip_path = str(root / 'tiny_clip.pt')
    trained_text = train_clip(data_root, clip_path)
    hits, inside, guide = localisation(data_root, clip_path)
    out = dict(localised=hits, region_on_class=inside,
               text_roundtrip=(guide.encode_text(list(COLOUR_CLASSES)) - trained_text).abs().max())
    runs = dict(cgs_similarity=('cgs', 'similarity'), samptx_prompt_free=('samptx', 'none'))
    for name, (method, points) in runs.items():
        out[name] = train_and_score(model_cfg(root / name, data_root, clip_path, method, points))
    print({k: (round(float(v), 3)) for k, v in out.items()})
    return out


def test_trained_clip_localises_the_class(results):
    assert results['text_roundtrip'] < 1e-5, results  # the guide reads the trained text tower
    assert results['localised'] >= LOCALISED, results


def test_text_only_cgs_beats_text_only_samptx(results):
    assert results['cgs_similarity'] >= results['samptx_prompt_free'] + TEXT_MARGIN, results


def test_lookalikes_paint_unlabelled_near_hues():
    """``lookalikes=0`` draws what the default draws; > 0 adds saturated pixels labelled wall."""
    plain = colour_shapes_sample(np.random.default_rng(3))
    zero = colour_shapes_sample(np.random.default_rng(3), lookalikes=0)
    assert all((a == b).all() for a, b in zip(plain, zero))
    rng = np.random.default_rng(3)
    for _ in range(4):
        image, label = colour_shapes_sample(rng, lookalikes=2)
        rgb = image.astype(int)
        saturated = rgb.max(-1) - rgb.min(-1) > 60  # the wall is unsaturated
        # at least part of one look-alike shape survives the labelled shapes painted on top
        assert (saturated & (label == 0)).sum() > 200
        assert set(np.unique(label).tolist()) <= {0, 1, 2, 3} and len(np.unique(label)) >= 3
