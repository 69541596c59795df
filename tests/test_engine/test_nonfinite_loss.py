"""NonFiniteLossHook: a NaN loss stops the run naming iteration and term, or skips the step."""
import glob
import json
import os.path as osp

import pytest
import torch
from test_engine.fault_hooks import FAULT_IMPORTS, FaultInjectionHook, build_runner, hook_of
from test_engine.tiny_seg import make_ade_tiny, write_config

import mmsamptx.engine as engine
from mmsamptx.engine import NonFiniteLossError, NonFiniteLossHook, NonFiniteModelError

ITERS = 6


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return make_ade_tiny(str(tmp_path_factory.mktemp('ade_tiny')))


def config(tmp_path, ade_root, action, **fault):
    hooks = [dict(type='NonFiniteLossHook', action=action),
             dict(type='FaultInjectionHook', record=True, **fault)]
    extra = FAULT_IMPORTS + f'custom_hooks = {hooks!r}\n'
    return write_config(str(tmp_path / 'cfg.py'), ade_root, max_iters=ITERS, ckpt_interval=2,
                        val_interval=100, extra=extra)


def last_checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def all_finite(state_dict):
    return all(torch.isfinite(t).all() for t in state_dict.values() if t.is_floating_point())


def scalars(work_dir):
    path, = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_stop_names_iteration_and_term_and_keeps_the_last_good_checkpoint(tmp_path, ade_root):
    # NaN at iteration 4, which is also a checkpoint iteration (interval 2).
    runner = build_runner(config(tmp_path, ade_root, 'stop', nan_at=4), tmp_path / 'wd')
    with pytest.raises(NonFiniteLossError) as info:
        runner.train()
    message = str(info.value)
    assert 'iteration 4' in message
    assert 'decode.loss_ce=nan' in message
    assert 'optimizer step of this iteration was not taken' in message
    good = osp.join(str(tmp_path / 'wd'), 'iter_2.pth')
    assert f'the last checkpoint is {good}' in message
    assert last_checkpoint(tmp_path / 'wd') == good
    assert not osp.exists(tmp_path / 'wd' / 'iter_4.pth')
    ckpt = torch.load(good)  # weights_only=True
    assert ckpt['meta']['iter'] == 2 and all_finite(ckpt['state_dict'])
    # the stopped iteration did not change the parameters either
    snap = hook_of(runner, FaultInjectionHook).snapshots[4]
    before, after = snap['before']['params'], snap['after']['params']
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_skip_leaves_parameters_unchanged_and_counts(tmp_path, ade_root):
    runner = build_runner(config(tmp_path, ade_root, 'skip', nan_at=3), tmp_path / 'wd')
    runner.train()
    snaps = hook_of(runner, FaultInjectionHook).snapshots
    assert sorted(snaps) == list(range(1, ITERS + 1))

    def same(it, part):
        before, after = snaps[it]['before'][part], snaps[it]['after'][part]
        if part == 'params':
            return all(torch.equal(v, after[k]) for k, v in before.items())
        return all(torch.equal(t, after[k][n]) for k, s in before.items() for n, t in s.items()
                   if isinstance(t, torch.Tensor)) and before.keys() == after.keys()

    assert same(3, 'params') and same(3, 'optimizer')  # the skipped step
    for it in (2, 4):
        assert not same(it, 'params')  # ordinary steps do change them
    assert hook_of(runner, NonFiniteLossHook).skips == 1
    assert runner.message_hub.get_info('nonfinite_skips') == 1

    records = [r for r in scalars(tmp_path / 'wd') if 'loss' in r]
    assert [r['step'] for r in records] == list(range(1, ITERS + 1))
    assert ['nonfinite_skips' in r for r in records] == [False, False, True, True, True, True]
    assert all(r['nonfinite_skips'] == 1 for r in records[2:])
    log, = glob.glob(osp.join(str(tmp_path / 'wd'), '*', '*.log'))
    text = open(log).read()
    assert 'Non-finite loss at iteration 3: decode.loss_ce=nan' in text
    assert '1 skipped iteration(s) so far' in text
    final = torch.load(last_checkpoint(tmp_path / 'wd'))
    assert final['meta']['iter'] == ITERS and all_finite(final['state_dict'])
    assert final['message_hub']['runtime_info']['nonfinite_skips'] == 1  # survives a resume


def test_a_non_finite_model_is_never_saved(tmp_path, ade_root):
    # A NaN that is not in the loss (a poisoned BatchNorm statistic after iteration 4).
    runner = build_runner(config(tmp_path, ade_root, 'skip', nan_buffer_at=4), tmp_path / 'wd')
    with pytest.raises(NonFiniteModelError) as info:
        runner.train()
    poisoned = hook_of(runner, FaultInjectionHook).poisoned
    assert 'iteration 4' in str(info.value) and poisoned in str(info.value)
    assert last_checkpoint(tmp_path / 'wd').endswith('iter_2.pth')
    assert not osp.exists(tmp_path / 'wd' / 'iter_4.pth')


def test_configure_and_arguments(tmp_path):
    from mmengine.config import Config
    cfg = Config(dict(custom_hooks=[dict(type='RandomStateHook')]))
    engine.configure_nonfinite(cfg, 'skip')
    assert cfg.custom_hooks[-1] == dict(type='NonFiniteLossHook', action='skip')
    engine.configure_nonfinite(cfg, 'stop')
    assert [h['type'] for h in cfg.custom_hooks] == ['RandomStateHook', 'NonFiniteLossHook']
    assert cfg.custom_hooks[1]['action'] == 'stop'
    with pytest.raises(ValueError, match="'stop' or 'skip'"):
        NonFiniteLossHook(action='ignore')
