"""Exact resume of the project's own demo SAM-PTx config (random classes / points, RandomFlip).

``configs/demo/samptx_demo.py`` inherits RandomStateHook from
``configs/_base_/default_runtime.py``; its segmentor keeps its prompt-sampler
generator in its state_dict. 8 generated images, batch 4, stop at N=3, resume
to 2N.
"""
import os.path as osp

import pytest
import torch
from test_engine.tiny_seg import run_tool, train_losses

import mmsamptx.engine  # noqa: F401  (allow-lists the checkpoint globals for torch.load)
from mmsamptx.demo import make_ambiguous_shapes

CONFIG = 'configs/demo/samptx_demo.py'
N = 3


@pytest.fixture(scope='module')
def options(tmp_path_factory):
    data_root = make_ambiguous_shapes(str(tmp_path_factory.mktemp('amb')), num_train=8,
                                      num_val=2)
    return [*(f'{k}.dataset.data_root={data_root}'
              for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')),
            f'train_cfg.max_iters={2 * N}', f'train_cfg.val_interval={N}',
            'default_hooks.logger.interval=1', f'default_hooks.checkpoint.interval={N}',
            'default_hooks.checkpoint.max_keep_ckpts=2']


def train(work_dir, options, *args):
    proc = run_tool(['tools/train.py', CONFIG, '--work-dir', work_dir, *args,
                     '--cfg-options', *options])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_demo_config_resumes_exactly(options, tmp_path):
    out = train(tmp_path / 'full', options)
    assert 'RandomStateHook' in out and 'NonFiniteLossHook' in out  # from default_runtime.py
    expected = train_losses(tmp_path / 'full')
    assert sorted(expected) == list(range(1, 2 * N + 1))

    work_dir = tmp_path / 'interrupted'
    train(work_dir, options + [f'train_cfg.max_iters={N}'])
    ckpt = torch.load(osp.join(work_dir, f'iter_{N}.pth'))  # weights_only=True
    assert len(ckpt['random_states']['ranks']) == 1
    out = train(work_dir, options, '--resume')
    assert f'restored the torch/numpy/python random states of iteration {N}' in out
    assert train_losses(work_dir) == expected  # exact float equality
