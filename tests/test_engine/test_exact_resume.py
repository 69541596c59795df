"""Exact resume with randomness: stop at N, --resume to 2N, the uninterrupted losses bit for bit.

The tiny mmseg model gets dropout in its head and RandomFlip +
PhotoMetricDistortion in its pipeline; RandomStateHook stores the torch /
numpy / Python RNG states in the checkpoints. Validation runs at N (the
checkpoint iteration) too, so the hook's validation isolation is exercised.
"""
import os.path as osp
import shutil
import subprocess

import pytest
import torch
from test_engine.fault_hooks import subprocess_env
from test_engine.tiny_seg import PYTHON, REPO, make_ade_tiny, train_losses, write_config

import mmsamptx.engine  # noqa: F401  (allow-lists the checkpoint globals for torch.load)
from mmsamptx.engine import RANDOM_STATES_KEY

N = 3

RANDOM_TRAINING = '''
model['decode_head']['dropout_ratio'] = 0.3
train_dataloader['dataset']['pipeline'] = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
custom_hooks = [dict(type='RandomStateHook'), dict(type='NonFiniteLossHook')]
'''


def train(config, work_dir, *args):
    proc = subprocess.run([PYTHON, 'tools/train.py', config, '--work-dir', str(work_dir), *args],
                          cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def config(tmp_path_factory):
    root = make_ade_tiny(str(tmp_path_factory.mktemp('ade_tiny')))
    folder = tmp_path_factory.mktemp('cfg')
    return write_config(str(folder / 'random_fcn.py'), root, max_iters=2 * N, val_interval=N,
                        ckpt_interval=N, sched_end=2 * N, extra=RANDOM_TRAINING)


@pytest.fixture(scope='module')
def full(config, tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('full')
    train(config, work_dir)
    losses = train_losses(work_dir)
    assert sorted(losses) == list(range(1, 2 * N + 1))
    return losses


@pytest.fixture(scope='module')
def interrupted(config, tmp_path_factory):
    """The first N iterations of the same run (work_dir, log)."""
    work_dir = tmp_path_factory.mktemp('first_half')
    out = train(config, work_dir, '--cfg-options', f'train_cfg.max_iters={N}')
    return work_dir, out


def test_checkpoint_holds_weights_only_random_states(interrupted):
    ckpt = torch.load(osp.join(interrupted[0], f'iter_{N}.pth'))  # weights_only=True default
    states = ckpt[RANDOM_STATES_KEY]
    assert states['world_size'] == 1 and len(states['ranks']) == 1
    rank0 = states['ranks'][0]
    assert set(rank0) == {'python', 'numpy', 'torch', 'cuda'}
    assert rank0['torch'].dtype == torch.uint8
    assert rank0['numpy']['key'].shape == (624, ) and rank0['python']['state'].shape == (625, )


def test_resume_is_exact_with_dropout_and_random_transforms(interrupted, config, full, tmp_path):
    work_dir = tmp_path / 'resumed'
    shutil.copytree(interrupted[0], work_dir)  # (the fixture's folder serves the control too)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / f'iter_{N}.pth'))
    out = train(config, work_dir, '--resume')
    assert f'restored the torch/numpy/python random states of iteration {N}' in out
    assert train_losses(work_dir) == full  # exact float equality, iteration by iteration


def test_without_the_states_the_resume_is_not_exact(interrupted, config, full, tmp_path):
    """The control: the same resume from a checkpoint whose random states were removed."""
    work_dir = tmp_path / 'no_states'
    work_dir.mkdir()
    ckpt = torch.load(osp.join(interrupted[0], f'iter_{N}.pth'))
    del ckpt[RANDOM_STATES_KEY]
    torch.save(ckpt, work_dir / f'iter_{N}.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / f'iter_{N}.pth'))
    out = train(config, work_dir, '--resume')
    assert 'the loaded checkpoint has no random states' in out
    got = train_losses(work_dir)
    assert all(got[i] != full[i] for i in range(N + 1, 2 * N + 1))


def test_resume_is_exact_with_dataloader_workers(config, tmp_path):
    """num_workers=2: the pipeline runs in workers seeded by mmengine's worker_init_fn."""
    workers = ['--cfg-options', 'train_dataloader.num_workers=2']
    train(config, tmp_path / 'full', *workers)
    train(config, tmp_path / 'resumed', *workers, f'train_cfg.max_iters={N}')
    train(config, tmp_path / 'resumed', '--resume', *workers)
    expected = train_losses(tmp_path / 'full')
    assert sorted(expected) == list(range(1, 2 * N + 1))
    assert train_losses(tmp_path / 'resumed') == expected
