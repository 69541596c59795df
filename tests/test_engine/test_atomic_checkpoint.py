"""AtomicCheckpointHook: atomic writes, last_checkpoint after the save, pruning after the save."""
import contextlib
import glob
import os
import os.path as osp
import random
import time

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner
from mmengine.runner.checkpoint import save_checkpoint
from test_engine.tiny_seg import make_ade_tiny, write_config

import mmsamptx  # noqa: F401
import mmsamptx.engine.atomic_checkpoint as atomic_mod
from mmsamptx.engine import ATOMIC_BACKEND_ARGS, AtomicCheckpointHook, AtomicLocalBackend


class Crash(RuntimeError):
    """Stands for the process dying in the middle of a write."""


class HalfWriter:
    """File stand-in: writes half of what it is given, then 'dies'."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[:len(data) // 2])
        self.f.flush()
        raise Crash('simulated crash during the checkpoint write')

    def __getattr__(self, name):
        return getattr(self.f, name)


def leftovers(folder):
    return [p for p in os.listdir(folder) if p.endswith('.tmp')]


# --------------------------------------------------------------------------------------
# the file backend
# --------------------------------------------------------------------------------------
def test_backend_is_registered_and_atomic(tmp_path, monkeypatch):
    backend = get_file_backend(str(tmp_path), backend_args=ATOMIC_BACKEND_ARGS)
    assert isinstance(backend, AtomicLocalBackend) and isinstance(backend, LocalBackend)
    path = str(tmp_path / 'sub' / 'ckpt.pth')
    save_checkpoint({'w': torch.ones(3)}, path, backend_args=ATOMIC_BACKEND_ARGS)
    before = open(path, 'rb').read()
    assert torch.load(path)['w'].sum() == 3

    real = atomic_mod.atomic_write

    @contextlib.contextmanager
    def crashing(p, mode='wb'):
        with real(p, mode) as f:
            yield HalfWriter(f)

    monkeypatch.setattr(atomic_mod, 'atomic_write', crashing)
    with pytest.raises(Crash):
        save_checkpoint({'w': torch.zeros(1000)}, path, backend_args=ATOMIC_BACKEND_ARGS)
    assert open(path, 'rb').read() == before
    assert leftovers(tmp_path / 'sub') == []
    # permissions as a plain open() would give them, not mkstemp's 0600
    monkeypatch.undo()
    save_checkpoint({'w': torch.ones(3)}, path, backend_args=ATOMIC_BACKEND_ARGS)
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask


# --------------------------------------------------------------------------------------
# the hook, with a stand-in runner that records what exists when a save starts
# --------------------------------------------------------------------------------------
class FakeRunner:

    def __init__(self, work_dir, name):
        self.work_dir = str(work_dir)
        self.logger = MMLogger.get_instance(name, log_level='WARNING')
        self.message_hub = MessageHub.get_instance(name)
        self.iter = 0
        self.epoch = 0
        self.saves = []  # (filename, files present in work_dir when the save started)

    def save_checkpoint(self, out_dir, filename, file_client_args=None, save_optimizer=True,
                        save_param_scheduler=True, meta=None, by_epoch=True, backend_args=None):
        assert backend_args == ATOMIC_BACKEND_ARGS
        self.saves.append((filename, sorted(os.listdir(out_dir))))
        save_checkpoint({'meta': dict(meta or {}), 'state_dict': {'x': torch.tensor(self.iter)}},
                        osp.join(out_dir, filename), backend_args=backend_args)


def read_last(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read()


def test_prunes_only_after_the_new_checkpoint_is_saved(tmp_path):
    runner = FakeRunner(tmp_path, f'atomic_prune_{time.time_ns()}')
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=2)
    stale = tmp_path / '.iter_7.pth.k3j2x9a1.tmp'  # what a save killed mid-write leaves
    stale.write_bytes(b'partial')
    unrelated = tmp_path / '.notes.tmp'
    unrelated.write_bytes(b'keep')
    hook.before_train(runner)
    assert not stale.exists() and unrelated.exists()
    unrelated.unlink()
    assert hook.atomic and hook.backend_args == ATOMIC_BACKEND_ARGS
    for it in range(5):
        runner.iter = it
        hook._save_checkpoint(runner)
        name = f'iter_{it + 1}.pth'
        assert read_last(tmp_path) == osp.join(str(tmp_path), name)
        if it >= 2:
            # the checkpoint that is about to fall out was still there during the save
            assert f'iter_{it - 1}.pth' in runner.saves[-1][1]
            assert not (tmp_path / f'iter_{it - 1}.pth').exists()
    assert sorted(glob.glob(str(tmp_path / 'iter_*.pth'))) == [
        str(tmp_path / 'iter_4.pth'), str(tmp_path / 'iter_5.pth')]
    assert runner.message_hub.get_info('keep_ckpt_ids') == [4, 5]
    assert leftovers(tmp_path) == []


def test_previous_best_removed_only_after_new_best_saved(tmp_path):
    runner = FakeRunner(tmp_path, f'atomic_best_{time.time_ns()}')
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, save_best='acc', rule='greater')
    hook.before_train(runner)
    for it, acc in ((1, 0.5), (2, 0.4), (3, 0.7)):
        runner.iter = it - 1
        hook._save_checkpoint(runner)
        runner.iter = it
        hook.after_val_epoch(runner, {'acc': acc})
    best_saves = [(name, present) for name, present in runner.saves if name.startswith('best_')]
    assert [name for name, _ in best_saves] == ['best_acc_iter_1.pth', 'best_acc_iter_3.pth']
    assert 'best_acc_iter_1.pth' in best_saves[1][1]  # old best still present during the save
    assert not (tmp_path / 'best_acc_iter_1.pth').exists()
    assert (tmp_path / 'best_acc_iter_3.pth').exists()
    assert runner.message_hub.get_info('best_ckpt') == str(tmp_path / 'best_acc_iter_3.pth')
    assert read_last(tmp_path) == str(tmp_path / 'iter_3.pth')


# --------------------------------------------------------------------------------------
# a real (tiny) training run that crashes while writing a checkpoint
# --------------------------------------------------------------------------------------
@pytest.fixture
def isolated_global_state():
    """An in-process Runner seeds the RNGs and may flip determinism flags: put them back."""
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()
    py_state = random.getstate()
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(torch_state)
    np.random.set_state(np_state)
    random.setstate(py_state)


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return make_ade_tiny(str(tmp_path_factory.mktemp('ade_tiny')))


def tiny_runner(ade_root, work_dir, hook_type, max_iters=3, resume=False):
    cfg_path = write_config(osp.join(osp.dirname(work_dir), f'{osp.basename(work_dir)}.py'),
                            ade_root, work_dir, max_iters=max_iters, val_interval=1000,
                            ckpt_interval=1)
    cfg = Config.fromfile(cfg_path)
    cfg.default_hooks.checkpoint = dict(type=hook_type, by_epoch=False, interval=1,
                                        max_keep_ckpts=1)
    cfg.env_cfg.dist_cfg.backend = 'gloo'
    cfg.randomness = dict(seed=0)
    name = f'{osp.basename(work_dir)}_{time.time_ns()}'
    cfg.experiment_name = name
    cfg.visualizer.name = name
    cfg.resume = resume
    cfg.log_level = 'WARNING'
    return Runner.from_cfg(cfg)


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, ade_root, monkeypatch,
                                                     isolated_global_state):
    work_dir = tmp_path / 'atomic'
    real = atomic_mod.atomic_write

    @contextlib.contextmanager
    def crash_on_third(path, mode='wb'):
        with real(path, mode) as f:
            yield HalfWriter(f) if str(path).endswith('iter_3.pth') else f

    monkeypatch.setattr(atomic_mod, 'atomic_write', crash_on_third)
    runner = tiny_runner(ade_root, str(work_dir), 'AtomicCheckpointHook')
    with pytest.raises(Crash):
        runner.train()
    monkeypatch.undo()

    previous = str(work_dir / 'iter_2.pth')
    assert read_last(work_dir) == previous
    ckpt = torch.load(read_last(work_dir))  # default weights_only=True
    assert ckpt['meta']['iter'] == 2
    assert not (work_dir / 'iter_3.pth').exists()
    assert not (work_dir / 'iter_1.pth').exists()  # max_keep_ckpts=1, pruned after iter_2
    assert leftovers(work_dir) == []

    # and training resumes from it
    runner = tiny_runner(ade_root, str(work_dir), 'AtomicCheckpointHook', resume=True)
    runner.train()
    assert runner.iter == 3
    assert read_last(work_dir) == str(work_dir / 'iter_3.pth')
    assert torch.load(str(work_dir / 'iter_3.pth'))['meta']['iter'] == 3
    assert not (work_dir / 'iter_2.pth').exists()


def test_plain_checkpoint_hook_loses_everything_in_the_same_crash(tmp_path, ade_root,
                                                                 monkeypatch,
                                                                 isolated_global_state):
    """Why the hook exists: mmengine's CheckpointHook prunes first and writes in place."""
    work_dir = tmp_path / 'plain'
    real_put = LocalBackend.put

    def put(self, obj, filepath):
        if str(filepath).endswith('iter_3.pth'):
            with open(filepath, 'wb') as f:
                HalfWriter(f).write(obj)
        return real_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, 'put', put)
    runner = tiny_runner(ade_root, str(work_dir), 'CheckpointHook')
    with pytest.raises(Crash):
        runner.train()
    assert read_last(work_dir) == str(work_dir / 'iter_2.pth')
    assert not (work_dir / 'iter_2.pth').exists()  # pruned before the failed save
    assert (work_dir / 'iter_3.pth').exists()  # torn
    with pytest.raises(Exception):
        torch.load(str(work_dir / 'iter_3.pth'))


def test_published_checkpoint_written_atomically(tmp_path):
    runner = FakeRunner(tmp_path, f'atomic_publish_{time.time_ns()}')
    hook = AtomicCheckpointHook(interval=1, by_epoch=False, published_keys=['meta', 'state_dict'])
    hook.before_train(runner)
    runner.iter = 1
    hook._save_checkpoint(runner)
    hook.after_train(runner)
    published = glob.glob(str(tmp_path / 'iter_2-*.pth'))
    assert len(published) == 1
    assert set(torch.load(published[0])) == {'meta', 'state_dict'}
    assert leftovers(tmp_path) == []
