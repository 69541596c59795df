"""SIGKILL while a checkpoint is being written: the last one still loads, --resume finishes.

A test-only hook (``FaultInjectionHook(slow_save_at=2N)``) writes half of
``iter_2N.pth`` into AtomicCheckpointHook's temporary file, flushes it to
disk, creates a marker file and sleeps; the test then kills the process with
SIGKILL. Iteration 2N's loss was already logged, so the resumed run's losses
can be compared with the killed run's, bit for bit.
"""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import time

import torch
from test_engine.fault_hooks import FAULT_IMPORTS, subprocess_env
from test_engine.tiny_seg import PYTHON, REPO, make_ade_tiny, write_config

import mmsamptx.engine  # noqa: F401  (allow-lists the checkpoint globals for torch.load)

N = 3


def losses_per_run(work_dir):
    runs = []
    for path in sorted(glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            runs.append({r['step']: r['loss'] for r in map(json.loads, f) if 'loss' in r})
    return runs


def test_sigkill_during_checkpoint_write_then_resume(tmp_path):
    root = make_ade_tiny(str(tmp_path / 'data'))
    marker = tmp_path / 'writing_checkpoint'
    hooks = [dict(type='RandomStateHook'),
             dict(type='FaultInjectionHook', slow_save_at=2 * N, marker=str(marker))]
    extra = FAULT_IMPORTS + f'custom_hooks = {hooks!r}\n' + \
        "model['decode_head']['dropout_ratio'] = 0.3\n"
    config = write_config(str(tmp_path / 'cfg.py'), root, max_iters=2 * N, val_interval=100,
                          ckpt_interval=N, sched_end=2 * N, extra=extra)
    work_dir = tmp_path / 'wd'
    cmd = [PYTHON, 'tools/train.py', config, '--work-dir', str(work_dir)]
    log = open(tmp_path / 'first.log', 'w')
    proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=log, stderr=log)
    try:
        deadline = time.time() + 240
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), open(tmp_path / 'first.log').read()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()

    # The torn write is only a hidden temporary file; last_checkpoint names a whole checkpoint.
    torn = [p for p in os.listdir(work_dir) if p.endswith('.tmp')]
    assert len(torn) == 1 and torn[0].startswith(f'.iter_{2 * N}.pth.')
    assert not osp.exists(work_dir / f'iter_{2 * N}.pth')
    last = (work_dir / 'last_checkpoint').read_text()
    assert last == str(work_dir / f'iter_{N}.pth')
    ckpt = torch.load(last)  # weights_only=True
    assert ckpt['meta']['iter'] == N and 'random_states' in ckpt

    resumed = subprocess.run(cmd + ['--resume'], cwd=REPO, env=subprocess_env(),
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert f'Removed an unfinished checkpoint write: {torn[0]}' in out
    assert (work_dir / 'last_checkpoint').read_text() == str(work_dir / f'iter_{2 * N}.pth')
    assert torch.load(work_dir / f'iter_{2 * N}.pth')['meta']['iter'] == 2 * N
    assert not [p for p in os.listdir(work_dir) if p.endswith('.tmp')]

    killed, second = losses_per_run(work_dir)
    assert sorted(killed) == list(range(1, 2 * N + 1))  # iteration 2N was logged before the kill
    assert sorted(second) == list(range(N + 1, 2 * N + 1))
    assert all(second[i] == killed[i] for i in second)  # with dropout: exact resume
