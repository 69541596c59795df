"""tools/dist_train.sh with MAX_RESTARTS=1 and --resume: a killed worker is restarted, the run ends.

Two CPU processes over gloo. A test-only hook SIGKILLs rank 1 at the start
of iteration 6 on the first attempt (a marker file says it happened);
torchrun stops rank 0 and restarts both, which resume from iter_4.pth and
finish. (Killed at the start of iteration 5, rank 1 may die while rank 0 is
still writing iter_4.pth; the restart then resumes from iter_2.pth, which is
also fine, but not deterministic.) Rank 1 also gets a NaN loss at iteration 2 with
``NonFiniteLossHook(action='skip')``: both ranks skip that step together
(the finiteness flag is all-reduced, so neither waits in DDP's all-reduce),
and the count survives the restart.
"""
import json
import os
import subprocess

import torch
from test_engine.fault_hooks import FAULT_IMPORTS, subprocess_env
from test_engine.tiny_seg import REPO, free_port, make_ade_tiny, write_config

import mmsamptx.engine  # noqa: F401  (allow-lists the checkpoint globals for torch.load)
from mmsamptx.engine import elastic_attempt_store

ITERS = 6


def scalars(run_dir):
    with open(run_dir / 'vis_data' / 'scalars.json') as f:
        return [json.loads(line) for line in f if line.strip()]


def test_killed_worker_is_restarted_and_the_run_finishes(tmp_path):
    root = make_ade_tiny(str(tmp_path / 'data'))
    marker = tmp_path / 'killed_once'
    hooks = [dict(type='RandomStateHook'),
             dict(type='NonFiniteLossHook', action='skip'),
             dict(type='FaultInjectionHook', nan_at=2, nan_rank=1, kill_at=6, kill_rank=1,
                  marker=str(marker))]
    config = write_config(str(tmp_path / 'cfg.py'), root, max_iters=ITERS, val_interval=ITERS,
                          ckpt_interval=2, extra=FAULT_IMPORTS + f'custom_hooks = {hooks!r}\n')
    work_dir = tmp_path / 'wd'
    env = subprocess_env()
    env.update(PORT=str(free_port()), MAX_RESTARTS='1')
    proc = subprocess.run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir',
                           str(work_dir), '--resume'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert marker.exists()  # rank 1 was killed once ...
    assert 'exitcode: -9' in out  # ... torchrun saw it ...
    assert f'Auto resumed from the latest checkpoint {work_dir}/iter_4.pth' in out  # restarted
    assert 'Non-finite loss at iteration 2: the loss of another process' in out  # rank 0's view

    last = (work_dir / 'last_checkpoint').read_text()
    assert last == str(work_dir / f'iter_{ITERS}.pth')
    ckpt = torch.load(last)  # weights_only=True
    assert ckpt['meta']['iter'] == ITERS
    assert len(ckpt['random_states']['ranks']) == 2  # both ranks' states
    assert ckpt['message_hub']['runtime_info']['nonfinite_skips'] == 1
    assert all(torch.isfinite(t).all() for t in ckpt['state_dict'].values()
               if t.is_floating_point())
    runs = [d for d in sorted(os.listdir(work_dir)) if (work_dir / d / 'vis_data').is_dir()]
    assert len(runs) == 2  # the two attempts' timestamp folders
    steps = [[r['step'] for r in scalars(work_dir / run) if 'loss' in r] for run in runs]
    assert steps[0][:4] == [1, 2, 3, 4] and steps[1] == [5, 6]


def test_restarted_attempts_use_a_fresh_store_prefix(monkeypatch):
    """The store a restarted worker uses cannot hold its predecessors' keys."""
    from torch import distributed as dist
    master = dist.TCPStore('127.0.0.1', 0, 1, is_master=True)
    env = dict(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(master.port), WORLD_SIZE='1',
               TORCHELASTIC_USE_AGENT_STORE='True', TORCHELASTIC_RESTART_COUNT='0')
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert elastic_attempt_store() is None  # first attempt: torch's own env:// rendezvous
    monkeypatch.setenv('TORCHELASTIC_RESTART_COUNT', '1')
    store = elastic_attempt_store()
    master.set('default_pg/rank_0', 'stale address of attempt 0')
    store.set('default_pg/rank_0', 'attempt 1')
    assert master.get('/mmsamptx/attempt_1/default_pg/rank_0') == b'attempt 1'
    assert master.get('default_pg/rank_0') == b'stale address of attempt 0'
    monkeypatch.setenv('TORCHELASTIC_USE_AGENT_STORE', 'False')
    assert elastic_attempt_store() is None


def test_close_process_group_destroys_only_after_a_clean_run():
    """After an error the group is left alone (a peer may wait in a collective); else it is closed."""
    from torch import distributed as dist

    from mmsamptx.engine import close_process_group
    store = dist.TCPStore('127.0.0.1', 0, 1, is_master=True)
    dist.init_process_group('gloo', store=store, rank=0, world_size=1)
    try:
        close_process_group(clean=False)
        assert dist.is_initialized()
        close_process_group(clean=True)
        assert not dist.is_initialized()
        close_process_group(clean=True)  # nothing left to close: no error
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
