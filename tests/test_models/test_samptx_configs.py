"""Every SAM-PTx config builds at SAM ViT-B with the closed-form trainable parameters of the
method notes (section 4), and follows the authors' protocol values."""
import glob

import pytest
from mmengine.config import Config
from mmseg.registry import MODELS

import mmsamptx  # noqa: F401
from mmsamptx.models.utils import parameter_report

D, T = 768, 512                               # ViT-B width, CLIP ViT-B/16 text width
R = D // 4                                    # bottleneck 192
BOTTLENECK = (D * R + R) + (R * D + D)        # 295,872
TEXT_PROJ = T * D + D                         # 393,984
DECODER = 4_058_340                           # SAM ViT-B mask decoder
SAMPTX = 12 * (BOTTLENECK + BOTTLENECK + TEXT_PROJ)
SPATIAL = 12 * (BOTTLENECK + BOTTLENECK)
PROMPT_TEXT = T * 256 + 256 + 256             # projection (no bias) + type + no-text embeddings
DECODER_TEXT = (T * 256 + 256) + (3 * 256 * 256 + 3 * 256 + 256 * 256 + 256) + 2 * 256 + \
    2 * (256 * 256 + 256)                     # projection + MHA + shared LN + FFN

MODELS_BY_KIND = {
    'samptx': dict(backbone=SAMPTX, decode_head=DECODER),
    'decoder-only': dict(backbone=0, decode_head=DECODER),
    'parallel-adapter': dict(backbone=SPATIAL, decode_head=DECODER),
    'text-prompt-encoder': dict(backbone=0, decode_head=DECODER + PROMPT_TEXT),
    'text-mask-decoder': dict(backbone=0, decode_head=DECODER + DECODER_TEXT),
}
EXPECTED = {'configs/samptx_ade20k_1-64.py': 'samptx',
            'configs/samptx/samptx-text-only_ade20k_1-64.py': 'samptx',
            'configs/samptx/samptx_cod.py': 'samptx',
            'configs/samptx/samptx_cod_test-camo.py': 'samptx',
            'configs/samptx/samptx_cod_test-chameleon.py': 'samptx'}
for split in ('1-32', '1-16', '1-8', '1-4'):
    EXPECTED[f'configs/samptx/samptx_ade20k_{split}.py'] = 'samptx'
for split in ('1-512', '1-256', '1-128', '1-64', '1-32'):
    EXPECTED[f'configs/samptx/samptx_coco_{split}.py'] = 'samptx'
for kind in ('decoder-only', 'parallel-adapter', 'text-prompt-encoder', 'text-mask-decoder'):
    for data in ('ade20k_1-64', 'coco_1-512'):
        EXPECTED[f'configs/samptx/{kind}_{data}.py'] = kind


def test_closed_form_counts_are_the_method_notes():
    assert BOTTLENECK == 295_872 and BOTTLENECK + TEXT_PROJ == 689_856
    assert SAMPTX == 11_828_736 and SPATIAL == 7_100_928
    assert PROMPT_TEXT == 131_584 and DECODER_TEXT == 526_592
    assert SAMPTX + DECODER == 15_887_076


def test_every_samptx_config_is_listed():
    found = ['configs/samptx_ade20k_1-64.py'] + glob.glob('configs/samptx/*.py')
    assert sorted(found) == sorted(EXPECTED)


@pytest.fixture(scope='module')
def built():
    cache = {}

    def build(config):
        cfg = Config.fromfile(config)
        # the class list and the sampling / test settings change no parameter: configs that
        # differ only there (dataset, split, COD's text key) share one ViT-B build
        parts = {k: v for k, v in cfg.model.items()
                 if k not in ('class_names', 'train_cfg', 'test_cfg', 'text_key')}
        key = repr(sorted(parts.items()))
        if key not in cache:
            cache[key] = parameter_report(MODELS.build(cfg.model))
        return cfg, cache[key]
    return build


@pytest.mark.parametrize('config', sorted(EXPECTED))
def test_config_trainable_parameters_equal_closed_form(config, built):
    cfg, rep = built(config)  # SAM ViT-B and CLIP ViT-B/16, built without reading any file
    for module, count in MODELS_BY_KIND[EXPECTED[config]].items():
        assert rep[module][0] == count, (module, rep[module])
    assert rep['neck'][0] == 0
    if 'text_encoder' in rep:
        assert rep['text_encoder'][0] == 0
    assert rep['total'][0] == sum(MODELS_BY_KIND[EXPECTED[config]].values())


@pytest.mark.parametrize('config', ['configs/samptx_ade20k_1-64.py',
                                    'configs/samptx/samptx_coco_1-512.py'])
def test_paper_configs_follow_the_authors_protocol(config):
    cfg = Config.fromfile(config)
    m = cfg.model
    assert m.backbone.autocast_dtype is None and m.decode_head.autocast_dtype is None  # fp32
    assert m.train_cfg.num_points == 5 and m.test_cfg.num_points == 5
    assert m.train_cfg.background == 'negative' and m.train_cfg.point_grid == 'mask'
    assert m.decode_head.loss_size == 'mask' and m.decode_head.mask_loss == 'bce'
    assert dict(m.decode_head.loss_weights) == dict(mask=1.0, dice=1.0, iou=0.0, soft_iou=1.0)
    assert m.text_encoder.templates == ('{}',) and m.text_encoder.normalize
    assert not m.text_encoder.subtract_redundant
    assert cfg.train_dataloader.dataset.type == 'ClassPairDataset'
    assert cfg.train_cfg.type == 'EpochBasedTrainLoop' and cfg.train_cfg.max_epochs == 40
    assert cfg.optim_wrapper.optimizer.type == 'AdamW' and cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['decode_head.mask_decoder'].lr_mult == 0.5
    assert 'clip_grad' not in cfg.optim_wrapper
    assert [e.type for e in cfg.val_evaluator] == ['ClassWiseIoUMetric', 'IoUMetric']
    assert cfg.default_hooks.checkpoint.save_best == 'classwise/mIoU'
