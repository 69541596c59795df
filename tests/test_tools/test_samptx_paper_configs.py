"""The SAM-PTx paper configs through the user's tools on generated miniatures of each dataset's
official layout (tiny architecture through --cfg-options): tools/train.py one epoch of (image, class)
pairs, then tools/test.py logging the class-wise metric beside mmseg's IoUMetric (COD: the COD
metrics). Every config's train and test pipelines also load one sample here."""
import argparse
import glob
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from test_engine.tiny_seg import run_tool

import mmsamptx  # noqa: F401

S = 128  # tiny input side, instead of SAM's 1024


def _img(path, label, seed):
    os.makedirs(osp.dirname(path), exist_ok=True)
    rng = np.random.RandomState(seed)
    colours = rng.randint(0, 255, (256, 3))
    img = np.clip(colours[label] + rng.randint(-8, 8, label.shape + (3,)), 0, 255).astype(np.uint8)
    assert cv2.imwrite(path, img)


def _label(path, label):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, label.astype(np.uint8))


def _regions(i, h, w, classes):
    """A label map of 2-3 rectangles of the given class values."""
    lab = np.full((h, w), classes[0], np.uint8)
    lab[h // 3:, :w // 2] = classes[1]
    lab[h // 2:, w // 2:] = classes[2]
    return lab


def make_ade(root, n_train=4, n_val=2, h=60, w=80):
    """ADEChallengeData2016 + UniMatch-format split files (labels 1..150, 0 = other)."""
    lines = {'training': [], 'validation': []}
    for subset, prefix, n in (('training', 'ADE_train_', n_train), ('validation', 'ADE_val_', n_val)):
        for i in range(1, n + 1):
            stem = f'{prefix}{i:08d}'
            lab = _regions(i, h, w, (0, 1 + i % 3, 5 + i % 2))
            _img(osp.join(root, 'images', subset, stem + '.jpg'), lab, i)
            _label(osp.join(root, 'annotations', subset, stem + '.png'), lab)
            lines[subset].append(f'images/{subset}/{stem}.jpg annotations/{subset}/{stem}.png')
    for name, subset in (('labeled.txt', 'training'), ('val.txt', 'validation')):
        with open(osp.join(root, name), 'w') as f:
            f.write('\n'.join(lines[subset]))  # no final newline, like UniMatch's 1/64
    return root


def make_coco(root, n_train=4, n_val=2, h=60, w=80):
    """coco/{train2017,val2017}/*.jpg + UniMatch's flat masks/<id>.png (0 background, 1..80)."""
    lines = {'train2017': [], 'val2017': []}
    k = 0
    for subset, n in (('train2017', n_train), ('val2017', n_val)):
        for _ in range(n):
            k += 1
            stem = f'{k:012d}'
            lab = _regions(k, h, w, (0, 1 + k % 3, 17 + k % 2))
            lab[:3, :3] = 255
            _img(osp.join(root, subset, stem + '.jpg'), lab, k)
            _label(osp.join(root, 'masks', stem + '.png'), lab)
            lines[subset].append(f'{subset}/{stem}.jpg masks/{stem}.png')
    with open(osp.join(root, 'labeled.txt'), 'w') as f:
        f.write('\n'.join(lines['train2017']))
    with open(osp.join(root, 'val.txt'), 'w') as f:
        f.write('\n'.join(lines['val2017']))
    return root


COD_TRAIN = ['COD10K-CAM-1-Aquatic-1-BatFish-1', 'COD10K-CAM-2-Terrestrial-23-LeafySeaDragon-5',
             'camourflage_00012', 'COD10K-CAM-3-Flying-53-Other-3']
COD_TEST = {'COD10K': ['COD10K-CAM-3-Flying-53-Bird-3'], 'CAMO': ['camourflage_00001'],
            'CHAMELEON': ['animal-1', 'animal-2']}


def make_cod(root, h=60, w=80):
    """SINet-V2's Combined_Camouflaged/{TrainDataset,TestDataset/<set>}/{Imgs,GT} (GT 0/255)."""
    sets = [('TrainDataset', COD_TRAIN)] + [(f'TestDataset/{k}', v) for k, v in COD_TEST.items()]
    i = 0
    for folder, stems in sets:
        for stem in stems:
            i += 1
            lab = np.zeros((h, w), np.uint8)
            lab[10 + i % 5:40, 20:50 + i % 7] = 1
            _img(osp.join(root, folder, 'Imgs', stem + '.jpg'), lab, i)
            _label(osp.join(root, folder, 'GT', stem + '.png'), lab * 255)
    return root


def tiny_options(cfg, data_root, split=None, val=None):
    """--cfg-options that shrink a paper config to the tiny arch at S² on the miniature."""
    m = cfg.model
    opts = [f'model.data_preprocessor.size=({S},{S})', f'model.data_preprocessor.test_cfg.size=({S},{S})',
            'model.backbone.arch=tiny', f'model.backbone.img_size={S}', 'model.backbone.checkpoint=None',
            'model.neck.in_channels=64', 'model.neck.checkpoint=None',
            f'model.decode_head.image_size={S}', 'model.decode_head.checkpoint=None',
            'model.decode_head.decoder.mlp_dim=128', 'model.decode_head.text_dims=64']
    if m.backbone.get('adapter_cfg') and 'text_dims' in m.backbone.adapter_cfg:
        opts.append('model.backbone.adapter_cfg.text_dims=64')
    if m.get('text_encoder'):
        opts += ['model.text_encoder.model_name=mmsamptx-tiny-clip', 'model.text_encoder.pretrained=None']
    train = 'train_dataloader.dataset'
    inner = train + ('.dataset' if cfg.train_dataloader.dataset.type == 'ClassPairDataset' else '')
    pipe = cfg.train_dataloader.dataset.get('dataset', cfg.train_dataloader.dataset).pipeline
    for i, t in enumerate(pipe):
        if t.type == 'Resize':
            opts.append(f'{inner}.pipeline.{i}.scale=({S},{S})')
        if t.type == 'SeededAlbu':
            opts.append(f'{inner}.pipeline.{i}.transforms.0.size=({S},{S})')
    for i, t in enumerate(cfg.test_dataloader.dataset.pipeline):
        if t.type == 'Resize':
            for loader in ('val_dataloader', 'test_dataloader'):
                opts.append(f'{loader}.dataset.pipeline.{i}.scale=({S},{S})')
    opts += [f'{inner}.data_root={data_root}']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    for loader in ('val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={data_root}')
    if split is not None:  # UniMatch-format lists of the miniature instead of the published files
        opts += [f'{inner}.published_split=None', f'{inner}.ann_file={split}']
        for loader in ('val_dataloader', 'test_dataloader'):
            opts += [f'{loader}.dataset.published_split=None', f'{loader}.dataset.ann_file={val}']
    opts += ['train_cfg.max_epochs=1', 'default_hooks.logger.interval=1',
             'model.test_cfg.class_chunk=4']
    return opts


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('paper')
    # two training images and one validation image each: the tool runs check the wiring
    ade = make_ade(str(root / 'ADEChallengeData2016'), n_train=2, n_val=1)
    coco = make_coco(str(root / 'coco'), n_train=2, n_val=1)
    cod = make_cod(str(root / 'Combined_Camouflaged'))
    return dict(ade20k=(ade, osp.join(ade, 'labeled.txt'), osp.join(ade, 'val.txt')),
                coco=(coco, osp.join(coco, 'labeled.txt'), osp.join(coco, 'val.txt')),
                cod=(cod, None, None))


def dataset_of(config):
    return 'ade20k' if 'ade20k' in config else 'coco' if 'coco' in config else 'cod'


def train_then_test(config, data, tmp_path, options=tiny_options, dataset=None):
    """tools/train.py one epoch then tools/test.py of its checkpoint; returns test.py's output."""
    cfg = Config.fromfile(config)
    opts = options(cfg, *data[dataset or dataset_of(config)])
    work_dir = str(tmp_path / 'work')
    proc = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--cfg-options', *opts])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'Epoch(train) [1]' in out
    ckpt = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
    assert ckpt.endswith('epoch_1.pth')
    proc = run_tool(['tools/test.py', config, ckpt, '--work-dir', str(tmp_path / 'test'),
                     '--cfg-options', *opts])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.parametrize('config', ['configs/samptx_ade20k_1-64.py',
                                    'configs/samptx/text-mask-decoder_coco_1-512.py'])
def test_ade_and_coco_configs_train_then_test_with_both_metrics(config, data, tmp_path):
    out = train_then_test(config, data, tmp_path)
    classwise = float(re.findall(r'classwise/mIoU: ([0-9.]+)', out)[-1])
    assembled = float(re.findall(r'prompted/mIoU: ([0-9.]+)', out)[-1])
    assert 0.0 <= classwise <= 100.0 and 0.0 <= assembled <= 100.0


def test_cod_config_trains_then_tests_with_the_cod_metrics(data, tmp_path):
    out = train_then_test('configs/samptx/samptx_cod.py', data, tmp_path)
    mae = float(re.findall(r'mask256/MAE: ([0-9.]+)', out)[-1])
    assert 0.0 <= mae <= 1.0
    assert re.search(r'Sm: [0-9.]+', out)


ALL = sorted(['configs/samptx_ade20k_1-64.py'] + glob.glob('configs/samptx/*.py'))


@pytest.mark.parametrize('config', ALL)
def test_every_config_loads_a_training_pair_and_a_test_image(config, data):
    init_default_scope('mmseg')
    cfg = Config.fromfile(config)
    parser = argparse.ArgumentParser()
    parser.add_argument('--o', nargs='+', action=DictAction)  # parsed as tools/train.py does
    cfg.merge_from_dict(parser.parse_args(['--o', *tiny_options(cfg, *data[dataset_of(config)])]).o)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    item = train[0]
    assert tuple(item['inputs'].shape[-2:]) == (S, S)
    if 'sample_class' in item['data_samples'].metainfo:
        c = item['data_samples'].metainfo['sample_class']
        assert c in train.classes_of(train.pair(0)[0])
    test = DATASETS.build(cfg.test_dataloader.dataset)
    sample = test[0]['data_samples']
    assert 'gt_sem_seg' in sample  # prompted evaluation draws points from it
    if dataset_of(config) == 'cod':
        assert sample.metainfo['class_name'] in ('BatFish', 'LeafySeaDragon', 'Camouflaged object',
                                                 'Camouflaged animal', 'Bird')
