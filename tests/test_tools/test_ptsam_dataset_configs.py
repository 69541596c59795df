"""PTSAM's main-table configs (configs/ptsam/<dataset>/): closed-form trainable counts for every cell,
and tools/train.py + tools/test.py in-process for one config of each dataset on its converted
miniature (tiny arch through --cfg-options; a different method per dataset).
"""
import glob
import importlib.util
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmseg.registry import MODELS
from segment_anything.modeling import MaskDecoder, TwoWayTransformer

from mmsamptx.models.adapters import LoRAQKV, lora_qkv_param_count
from mmsamptx.models.utils import parameter_report

from test_datasets.ptsam_miniatures import build_converted

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASETS = {  # folder: (slug in file names, dataset type)
    'organoid_basic': ('organoid-basic', 'OrganoidBasicDataset'),
    'em_particles': ('em-particles', 'EMParticlesDataset'),
    'livecell': ('livecell', 'LIVECellDataset'),
    'kvasir_seg': ('kvasir-seg', 'KvasirSEGDataset'),
}
C, DEPTH = 768, 12  # ViT-B
DECODER = sum(p.numel() for p in MaskDecoder(transformer_dim=256, transformer=TwoWayTransformer(
    depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8)).parameters())  # 4,058,340
METHODS = {  # trainable parameters by module, closed form
    'ptsam-decoder': dict(backbone=0, decode_head=8 * 256),
    'ptsam-decoder-encoder': dict(backbone=DEPTH * 8 * C, decode_head=8 * 256),
    'decoder-ft': dict(backbone=0, decode_head=DECODER),
    'samed-lora': dict(backbone=lora_qkv_param_count(C, 4, 2, DEPTH), decode_head=DECODER),
}
CONFIGS = {f'configs/ptsam/{folder}/{method}_vit-b_{slug}-16shot.py': (folder, method)
           for folder, (slug, _) in DATASETS.items() for method in METHODS}


def test_every_dataset_config_is_listed():
    found = glob.glob('configs/ptsam/*/*.py')
    found = [p for p in found if p.split('/')[2] in DATASETS]
    assert sorted(found) == sorted(CONFIGS)


def test_closed_forms():
    assert DECODER == 4_058_340
    assert METHODS['ptsam-decoder-encoder']['backbone'] == 73_728
    assert METHODS['samed-lora']['backbone'] == 12 * 2 * 2 * 768 * 4 == 147_456


@pytest.mark.parametrize('config', sorted(CONFIGS))
def test_trainable_parameters_equal_closed_form(config):
    folder, method = CONFIGS[config]
    cfg = Config.fromfile(config)
    assert cfg.train_dataloader.dataset.type == DATASETS[folder][1]
    assert cfg.model.class_names == DATASETS[folder][1]
    assert cfg.train_dataloader.dataset.num_shots == 16
    assert cfg.model.test_cfg.mode == 'auto' and cfg.model.train_cfg.num_points == 0
    with torch.device('meta'):  # ViT-B without allocating it
        model = MODELS.build(cfg.model)
    rep = parameter_report(model)
    for module, count in METHODS[method].items():
        assert rep[module][0] == count, (module, rep[module])
    assert rep['neck'][0] == 0
    assert rep['total'][0] == sum(METHODS[method].values())
    lora = [b.attn.qkv for b in model.backbone.blocks if isinstance(b.attn.qkv, LoRAQKV)]
    if method == 'samed-lora':
        assert len(lora) == DEPTH and all(m.rank == 4 and m.targets == ('q', 'v') and m.scaling == 1.0
                                          for m in lora)
    else:
        assert not lora
    # the frozen, unadapted encoder's embeddings are cached; never an adapted or prompted one
    assert (model.embedding_cache is not None) == (method in ('ptsam-decoder', 'decoder-ft'))


# ------------------------------------------------------------------------ tools
S = 64  # tiny input side
TOOL_RUNS = {  # one config per dataset, a different method each
    'organoid_basic': 'ptsam-decoder',
    'em_particles': 'ptsam-decoder-encoder',
    'livecell': 'decoder-ft',
    'kvasir_seg': 'samed-lora',
}


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'mmsamptx_tool_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_options(cfg, data_root, iters=2):
    """--cfg-options: the tiny arch at S², the converted miniature, its 2-shot list, 2 iterations."""
    opts = [f'model.data_preprocessor.size=({S},{S})', f'model.data_preprocessor.test_cfg.size=({S},{S})',
            'model.backbone.arch=tiny', f'model.backbone.img_size={S}', 'model.backbone.checkpoint=None',
            'model.neck.in_channels=64', 'model.neck.checkpoint=None',
            f'model.decode_head.image_size={S}', 'model.decode_head.checkpoint=None',
            'model.decode_head.decoder.mlp_dim=128',
            f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters + 1}',
            f'default_hooks.checkpoint.interval={iters}', 'default_hooks.logger.interval=1',
            'train_dataloader.dataset.num_shots=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.dataset.data_root={data_root}', f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
        pipeline = cfg[loader].dataset.pipeline
        opts += [f'{loader}.dataset.pipeline.{i}.scale=({S},{S})'
                 for i, t in enumerate(pipeline) if t.type == 'Resize']
    return opts


@pytest.mark.parametrize('folder', sorted(TOOL_RUNS))
def test_train_then_test_on_the_converted_miniature(folder, tmp_path):
    data_root = build_converted(folder, str(tmp_path / 'data'), num_shots=2, seed=0)
    config = f'configs/ptsam/{folder}/{TOOL_RUNS[folder]}_vit-b_{DATASETS[folder][0]}-16shot.py'
    opts = tiny_options(Config.fromfile(config), data_root)
    work_dir = str(tmp_path / 'work')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert load_tool('train').main([config, '--work-dir', work_dir, '--cfg-options', *opts]) == 0
        ckpt = open(osp.join(work_dir, 'last_checkpoint')).read().strip()
        assert ckpt.endswith('iter_2.pth')
        test_dir = tmp_path / 'test'
        assert load_tool('test').main([config, ckpt, '--work-dir', str(test_dir),
                                       '--cfg-options', *opts]) == 0
    finally:
        torch.set_num_threads(threads)
    logs = glob.glob(str(test_dir / '*' / '*.log'))
    text = open(logs[0]).read()
    dice = float(re.findall(r'Dice: ([0-9.]+)', text)[-1])
    assert 0.0 <= dice <= 100.0
