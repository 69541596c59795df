"""Test-only faults for training runs, switched on from a test's config.

``custom_imports=dict(imports=['mmsamptx', 'test_engine.fault_hooks'])`` (with
``tests/`` on ``PYTHONPATH``) registers :class:`FaultInjectionHook`, then e.g.
``custom_hooks = [..., dict(type='FaultInjectionHook', nan_at=4)]``.
Iterations are counted from 1, as in the log lines and ``iter_N.pth``.
"""
import os
import os.path as osp
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS


def _module(model):
    return getattr(model, 'module', model)


def _touch(path):
    with open(path, 'w') as f:
        f.write(str(os.getpid()))


@HOOKS.register_module(force=True)
class FaultInjectionHook(Hook):
    """Inject faults at given iterations.

    Args:
        nan_at (int): multiply the loss term ``nan_term`` by NaN at this iteration.
        nan_rank (int): only in this rank (None: all).
        nan_buffer_at (int): after this iteration's step, set the first
            BatchNorm running mean to NaN.
        kill_at (int): SIGKILL this process at the start of this iteration,
            on rank ``kill_rank``, if ``marker`` does not exist yet (creating it).
        slow_save_at (int): the checkpoint of this iteration is written half,
            then ``marker`` is created and the process sleeps (to be killed);
            only if ``marker`` does not exist yet.
        record (bool): keep copies of the parameters and optimizer state
            before and after every iteration in ``self.snapshots``.
    """

    priority = 'HIGHEST'

    def __init__(self, nan_at=None, nan_term='decode.loss_ce', nan_rank=None, nan_buffer_at=None,
                 kill_at=None, kill_rank=None, slow_save_at=None, marker=None, record=False):
        self.nan_at = nan_at
        self.nan_term = nan_term
        self.nan_rank = nan_rank
        self.nan_buffer_at = nan_buffer_at
        self.kill_at = kill_at
        self.kill_rank = kill_rank
        self.slow_save_at = slow_save_at
        self.marker = marker
        self.record = record
        self.snapshots = {}
        self._patched = None

    def before_train(self, runner):
        if self.slow_save_at is not None and not osp.exists(self.marker):
            self._make_saves_slow(f'iter_{self.slow_save_at}.pth')

    def _make_saves_slow(self, name):
        import mmsamptx.engine.atomic_checkpoint as atomic_mod
        real = atomic_mod._write_atomically
        marker = self.marker

        def slow_write(data, filepath):
            if osp.basename(str(filepath)) != name:
                return real(data, filepath)
            with atomic_mod.atomic_write(filepath, 'wb') as f:
                f.write(data[:len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
                _touch(marker)
                time.sleep(600)  # the test kills us here
                f.write(data[len(data) // 2:])

        atomic_mod._write_atomically = slow_write

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        iteration = runner.iter + 1
        if (iteration == self.kill_at and get_rank() == (self.kill_rank or 0)
                and not osp.exists(self.marker)):
            _touch(self.marker)
            os.kill(os.getpid(), signal.SIGKILL)
        if self.record:
            self.snapshots[iteration] = {'before': self._state(runner)}
        if iteration == self.nan_at and self.nan_rank in (None, get_rank()):
            self._inject_nan(runner)

    def _inject_nan(self, runner):
        model = _module(runner.model)
        real = model.loss
        term = self.nan_term

        def loss(*args, **kwargs):
            losses = real(*args, **kwargs)
            losses[term] = losses[term] * float('nan')
            return losses

        model.loss = loss
        self._patched = model

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        iteration = runner.iter + 1
        if self._patched is not None:
            del self._patched.loss  # back to the class' method
            self._patched = None
        if self.record:
            self.snapshots[iteration]['after'] = self._state(runner)
        if iteration == self.nan_buffer_at:
            for name, buf in _module(runner.model).named_buffers():
                if name.endswith('running_mean'):
                    buf.fill_(float('nan'))
                    self.poisoned = name
                    break

    @staticmethod
    def _state(runner):
        params = {k: v.detach().clone() for k, v in _module(runner.model).named_parameters()}
        opt = runner.optim_wrapper.optimizer.state_dict()['state']
        opt = {k: {n: t.clone() if isinstance(t, torch.Tensor) else t for n, t in s.items()}
               for k, s in opt.items()}
        return {'params': params, 'optimizer': opt}


# --------------------------------------------------------------------------------------
# helpers for the tests
# --------------------------------------------------------------------------------------
FAULT_IMPORTS = "custom_imports = dict(imports=['mmsamptx', 'test_engine.fault_hooks'], " \
                "allow_failed_imports=False)\n"


def build_runner(config_path, work_dir, cfg_options=None):
    """An mmengine Runner for ``config_path`` in this process, as tools/train.py sets it up.

    Each runner gets its own experiment and visualizer names, so that runners
    built in one process do not share mmengine's logger, message hub and
    visualizer (all per-name singletons).
    """
    import uuid

    import mmsamptx.engine as engine
    cfg = engine.load_config(config_path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    name = f'test_{uuid.uuid4().hex[:12]}'
    cfg.experiment_name = name
    if cfg.get('visualizer'):  # also a per-name singleton (it holds the vis_data folder)
        cfg.visualizer.name = f'visualizer_{name}'
    engine.upgrade_checkpoint_hook(cfg)
    engine.adapt_to_device(cfg, 'none')
    return engine.build_runner(cfg)


def hook_of(runner, cls):
    return next(h for h in runner.hooks if isinstance(h, cls))


def subprocess_env():
    """tool_env() plus ``tests/`` on PYTHONPATH (for ``test_engine.fault_hooks``)."""
    from test_engine.tiny_seg import REPO, tool_env
    env = tool_env()
    env['PYTHONPATH'] = osp.join(REPO, 'tests') + os.pathsep + env['PYTHONPATH']
    return env
