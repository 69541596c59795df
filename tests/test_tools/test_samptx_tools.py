"""SAM-PTx through the user's tools: train.py, test.py, dist_train.sh (2 CPU processes) and infer.py."""
import os.path as osp
import re
import subprocess

import pytest
from test_engine.tiny_seg import REPO, free_port, run_tool, tool_env, train_losses

from mmsamptx.demo import make_ambiguous_shapes

CONFIG = 'configs/demo/samptx_demo.py'
ITERS = 40


def data_opts(data_root):
    return [f'{k}.dataset.data_root={data_root}'
            for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_ambiguous_shapes(str(tmp_path_factory.mktemp('amb') / 'data'), num_train=16,
                                 num_val=4)


@pytest.fixture(scope='module')
def trained(data_root, tmp_path_factory):
    """One process, batch 4, ITERS iterations: (work_dir, checkpoint)."""
    work_dir = str(tmp_path_factory.mktemp('single'))
    proc = run_tool(['tools/train.py', CONFIG, '--work-dir', work_dir, '--cfg-options',
                     *data_opts(data_root), f'train_cfg.max_iters={ITERS}',
                     f'train_cfg.val_interval={ITERS}', 'default_hooks.logger.interval=1',
                     f'default_hooks.checkpoint.interval={ITERS}'])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Trainable / total parameters' in proc.stdout + proc.stderr
    return work_dir, open(osp.join(work_dir, 'last_checkpoint')).read().strip()


def test_train_then_test_gives_a_checkpoint_and_an_miou(trained, data_root, tmp_path):
    work_dir, ckpt = trained
    assert ckpt.endswith(f'iter_{ITERS}.pth') and osp.isfile(ckpt)
    proc = run_tool(['tools/test.py', CONFIG, ckpt, '--work-dir', str(tmp_path), '--cfg-options',
                     *data_opts(data_root)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    miou = float(re.findall(r'mIoU: ([0-9.]+)', proc.stdout + proc.stderr)[-1])
    assert 0.0 < miou <= 100.0


def test_two_process_training_matches_one_process(trained, data_root, tmp_path):
    """2 gloo processes x batch 2 against 1 process x batch 4: the same global batch.

    The two runs draw different images and prompts (each rank samples its own),
    so the losses agree statistically, not bit for bit: the mean training loss
    over the run within 10 %.
    """
    env = tool_env()
    env['PORT'] = str(free_port())
    work_dir = str(tmp_path / 'dist')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', CONFIG, '2', '--work-dir', work_dir, '--cfg-options',
         *data_opts(data_root), f'train_cfg.max_iters={ITERS}', f'train_cfg.val_interval={ITERS}',
         'train_dataloader.batch_size=2', 'default_hooks.logger.interval=1',
         f'default_hooks.checkpoint.interval={ITERS}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    single, dist = train_losses(trained[0]), train_losses(work_dir)
    assert len(single) == len(dist) == ITERS
    mean_single = sum(single.values()) / ITERS
    mean_dist = sum(dist.values()) / ITERS
    assert abs(mean_dist - mean_single) <= 0.10 * mean_single, (mean_single, mean_dist)


def test_infer_writes_mask_and_overlay_and_names_bad_points(trained, tmp_path):
    _, ckpt = trained
    image = osp.join(REPO, 'assets', 'chelsea.jpg')
    proc = run_tool(['tools/infer.py', image, '--config', CONFIG, '--checkpoint', ckpt,
                     '--text', 'plate', '--points', '200,150', '--out-dir', str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image
    mask = Image.open(tmp_path / 'chelsea_plate_mask.png')
    overlay = Image.open(tmp_path / 'chelsea_overlay.png')
    assert mask.size == (451, 300)
    assert overlay.size[1] == 300 and overlay.size[0] > 451  # the legend panel on the right
    assert set(mask.getdata()) <= {0, 255}
    proc = run_tool(['tools/infer.py', image, '--config', CONFIG, '--checkpoint', ckpt,
                     '--text', 'plate', '--points', '500,10', '--out-dir', str(tmp_path)])
    assert proc.returncode == 2
    assert 'point (500, 10) lies outside the 451x300 image' in proc.stderr


def test_demo_refuses_text_mode_for_runs_without_text(tmp_path):
    """Refused before any data is generated or model trained."""
    proc = run_tool(['tools/demo.py', '--mode', 'text', '--work-dir', str(tmp_path / 'demo')])
    assert proc.returncode == 2
    assert '--mode text prompts by class name only, but decoder-only read no text' in proc.stderr
    proc = run_tool(['tools/demo.py', '--runs', 'samptx,nope', '--work-dir', str(tmp_path / 'demo')])
    assert proc.returncode == 2 and "--runs: unknown ['nope']" in proc.stderr
    assert not (tmp_path / 'demo').exists()
