"""CLIP-Guided SAM configs: closed-form trainable counts at SAM ViT-B + CLIP ViT-B/16 at 512²
(method notes section 4), every config loads a training pair and a test image, and the VOC 1/16
config trains one epoch with tools/train.py and tests with tools/test.py on a generated miniature
of VOC's layout (tiny SAM and tiny CLIP through --cfg-options)."""
import argparse
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS
from test_datasets.test_pascal_voc import make_voc, unimatch_lines
import subprocess

from test_engine.tiny_seg import REPO, free_port, run_tool, tool_env
from test_tools.test_samptx_paper_configs import S, make_ade, make_coco, make_cod, tiny_options

import mmsamptx  # noqa: F401
from mmsamptx.models.utils import parameter_report

R = 192
BOTTLENECK = (768 * R + R) + (R * 768 + 768)                   # 295,872
SEMANTIC = BOTTLENECK + 2 * (512 * 768 + 768)                  # 1,083,840
ADAPTERS = 12 * (BOTTLENECK + SEMANTIC)                        # 16,556,544
CLIP_ATTN = 12 * ((768 * 2304 + 2304) + (768 * 768 + 768))     # 28,348,416
PROMPT_ENCODER, DECODER = 6_220, 4_058_340
CONFIGS = sorted(glob.glob('configs/clip_guided_sam/*.py'))
LOADED = {}  # dataset config -> its first item


def test_closed_form_counts_are_the_method_notes():
    assert SEMANTIC == 1_083_840 and ADAPTERS == 16_556_544 and CLIP_ATTN == 28_348_416
    assert ADAPTERS + PROMPT_ENCODER + DECODER + CLIP_ATTN == 48_969_520


# Table 4's scaling rows (method notes section 4, "Reconciling Table 4"; the notes' totals also count
# the text positional embedding, which ours keeps frozen: 59,136 for CLIP-L, 39,424 for CLIP-B).
CLIP_L_ADAPTERS = 12 * (BOTTLENECK + BOTTLENECK + 2 * (768 * 768 + 768))      # 21,275,136
CLIP_L_ATTN = 24 * ((1024 * 3072 + 3072) + (1024 * 1024 + 1024))            # 100,761,600
R_H = 320                                                                    # 0.25 * 1280
SAM_H_ADAPTERS = 6 * (2 * ((1280 * R_H + R_H) + (R_H * 1280 + 1280)) + 2 * (512 * 1280 + 1280))


def test_table4_closed_forms_are_the_method_notes():
    assert CLIP_L_ADAPTERS == 21_275_136 and CLIP_L_ATTN == 100_761_600
    assert CLIP_L_ADAPTERS + CLIP_L_ATTN + PROMPT_ENCODER + DECODER + 77 * 768 == 126_160_432
    assert SAM_H_ADAPTERS == 17_729_280
    assert SAM_H_ADAPTERS + CLIP_ATTN + PROMPT_ENCODER + DECODER + 77 * 512 == 50_181_680


@pytest.mark.parametrize('config,adapters,clip,total', [
    ('configs/clip_guided_sam/cgs_voc_1-16.py', ADAPTERS, CLIP_ATTN, None),
    ('configs/clip_guided_sam/cgs-semantic-last4_voc_1-16.py', 10_252_800, CLIP_ATTN, None),
    ('configs/clip_guided_sam/cgs-frozen-clip_voc_1-16.py', ADAPTERS, 0, None),
    # the full system of CLIP-L/14 + SAM-B is the notes' 542,627,121 (543 M); CLIP-B + SAM-H's
    # 809,076,529 counts CLIP's positional table at 512² (1025 rows), ours keeps the 224² table
    # (197 rows) and resizes it in the forward: 635,904 fewer
    ('configs/clip_guided_sam/cgs-clip-l_coco_1-512.py', CLIP_L_ADAPTERS, CLIP_L_ATTN, 542_627_121),
    ('configs/clip_guided_sam/cgs-sam-h_coco_1-512.py', SAM_H_ADAPTERS, CLIP_ATTN,
     809_076_529 - (1025 - 197) * 768)])
def test_trainable_parameters_equal_closed_form(config, adapters, clip, total):
    with torch.device('meta'):  # counts without memory or file reads
        rep = parameter_report(MODELS.build(Config.fromfile(config).model))
    assert rep['backbone'][0] == adapters
    assert rep['decode_head'][0] == PROMPT_ENCODER + DECODER
    assert rep['guide'][0] == clip
    assert rep['neck'][0] == 0
    assert rep['total'][0] == adapters + PROMPT_ENCODER + DECODER + clip
    if total is not None:
        assert rep['total'][1] == total


def cgs_options(cfg, data_root, split=None, val=None):
    opts = tiny_options(cfg, data_root, split, val)
    opts = [o for o in opts if not o.startswith('model.decode_head.text_dims')]
    adapter = cfg.model.backbone.adapter_cfg
    if adapter is None:
        pass
    elif isinstance(adapter, dict):
        if adapter.type == 'SemanticAdapter':
            opts += ['model.backbone.adapter_cfg.vision_dims=64']
        if adapter.get('blocks') is not None:  # adapters in the last blocks: the tiny encoder's last 2
            opts += ['model.backbone.adapter_cfg.blocks=[2,3]',
                     'model.backbone.attn_adapter_cfg.blocks=[2,3]']
    else:  # semantic adapters in the last blocks: the tiny encoder's last 2 of 4
        opts = [o for o in opts if not o.startswith('model.backbone.adapter_cfg.')]
        for i, a in enumerate(adapter):
            semantic = a.type == 'SemanticAdapter'
            opts.append(f'model.backbone.adapter_cfg.{i}.blocks={[2, 3] if semantic else [0, 1]}')
            if semantic:
                opts += [f'model.backbone.adapter_cfg.{i}.text_dims=64',
                         f'model.backbone.adapter_cfg.{i}.vision_dims=64']
    return opts + ['model.guide.model_name=mmsamptx-tiny-clip', 'model.guide.pretrained=None',
                   'model.guide.clip_size=64', 'model.guide.surgery_blocks=1',
                   f'model.guide.finetune_attn_blocks={min(cfg.model.guide.finetune_attn_blocks, 1)}']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('cgs')
    voc = make_voc(str(root), h=60, w=80)
    for name, ids in (('labeled.txt', ['2007_000032', '2007_000039', '2008_000008']),
                      ('val.txt', ['2007_000033', '2010_004493'])):
        with open(osp.join(voc, name), 'w') as f:
            f.write('\n'.join(unimatch_lines(ids)))
    ade = make_ade(str(root / 'ADEChallengeData2016'))
    coco = make_coco(str(root / 'coco'))
    cod = make_cod(str(root / 'Combined_Camouflaged'))
    return dict(voc=(voc, osp.join(voc, 'labeled.txt'), osp.join(voc, 'val.txt')),
                ade20k=(ade, osp.join(ade, 'labeled.txt'), osp.join(ade, 'val.txt')),
                coco=(coco, osp.join(coco, 'labeled.txt'), osp.join(coco, 'val.txt')),
                cod=(cod, None, None))


def dataset_of(config):
    return next(k for k in ('voc', 'ade20k', 'coco', 'cod') if k in config)


@pytest.mark.parametrize('config', CONFIGS)
def test_every_config_builds_and_loads_a_training_pair_and_a_test_image(config, data):
    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)
    cfg.merge_from_dict(parser.parse_args(['--o', *cgs_options(cfg, *data[dataset_of(config)])]).o)
    MODELS.build(cfg.model)
    # most configs share their data: each distinct train / test dataset is loaded once
    for loader in ('train_dataloader', 'test_dataloader'):
        key = repr(cfg[loader].dataset)
        if key not in LOADED:
            LOADED[key] = DATASETS.build(cfg[loader].dataset)[0]
        item = LOADED[key]
        assert tuple(item['inputs'].shape[-2:]) == (S, S)
        assert 'gt_sem_seg' in item['data_samples']


def test_training_free_baseline_is_evaluated_without_a_checkpoint(data, tmp_path):
    """tools/test.py CONFIG none tests the model's own initial weights (training-free rows)."""
    config = 'configs/clip_guided_sam/clipsurgery-sam_modified_voc_1-16.py'
    opts = cgs_options(Config.fromfile(config), *data['voc'])
    proc = run_tool(['tools/test.py', config, 'none', '--work-dir', str(tmp_path), '--cfg-options',
                     *opts])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 0.0 <= float(re.findall(r'classwise/mIoU: ([0-9.]+)', out)[-1]) <= 100.0
    rep = parameter_report(MODELS.build(Config.fromfile(config).model))
    assert rep['total'][0] == 0  # nothing trains


def test_voc_config_trains_with_two_processes_then_tests_in_semi_automatic_mode(data, tmp_path):
    """tools/dist_train.sh with 2 gloo processes, 1 pair each per step (the authors' 2 x 1), then
    tools/test.py of its checkpoint logs the class-wise metric."""
    config = 'configs/clip_guided_sam/cgs_voc_1-16.py'
    opts = cgs_options(Config.fromfile(config), *data['voc'])
    env = tool_env()
    env['PORT'] = str(free_port())
    work_dir = str(tmp_path / 'dist')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir,
                           '--cfg-options', *opts, 'train_dataloader.batch_size=1'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ckpt = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    assert ckpt.endswith('epoch_1.pth')
    proc = run_tool(['tools/test.py', config, ckpt, '--work-dir', str(tmp_path / 'test'),
                     '--cfg-options', *opts])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 0.0 <= float(re.findall(r'classwise/mIoU: ([0-9.]+)', out)[-1]) <= 100.0
