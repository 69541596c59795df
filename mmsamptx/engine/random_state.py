"""Exact resume: the torch / numpy / Python RNG states travel with the checkpoint.

mmengine 0.10.7's resume restores the model, optimizer, schedulers, iteration
and message hub, and re-seeds from ``randomness.seed``; it then advances the
train dataloader past the batches already consumed. What it does not restore
is the *state* of the global random number generators at the checkpoint, so
anything random after a resume (dropout, ``RandomFlip`` and other
transforms running in the main process, random prompts drawn from the global
generators) differs from the uninterrupted run.

:class:`RandomStateHook` (registered in mmseg's ``HOOKS``) fixes that:

* ``before_save_checkpoint``: stores :func:`get_random_states` of every rank
  (``Runner.save_checkpoint`` runs on rank 0 only, so in a distributed run
  all ranks gather their states in ``after_train_iter`` of the iterations at
  which a ``CheckpointHook`` is about to save) under the top-level checkpoint key
  ``'random_states'`` as tensors, ints, floats and lists only, so the
  checkpoint still loads with ``torch.load(weights_only=True)`` and needs no
  new allow-listed global.
* ``after_load_checkpoint`` + ``before_train_epoch``: on a resume, each rank
  gets its own states back *at the point where the uninterrupted run was*:
  for ``IterBasedTrainLoop`` right after mmengine has advanced the dataloader
  past the consumed batches and right before the first new batch is fetched
  (the advance runs the data pipeline, which would otherwise consume the
  restored randomness); for an epoch-based loop at the start of the next
  epoch.
* ``before_val`` / ``after_val``: validation during training is made
  RNG-neutral (the training generators are put back after it), so a
  checkpoint saved just before a validation resumes exactly too.

With ``num_workers > 0`` the pipeline runs in worker processes, seeded by
mmengine's ``worker_init_fn`` from ``randomness.seed``, rank and worker id
(not from the main process' generators); the resumed run's workers replay
the advance, so they reach the same state as in the uninterrupted run. The
hook covers the main process; both cases resume exactly (see
``docs/training.md``).

Enable it with ``custom_hooks = [dict(type='RandomStateHook')]`` (the
project's ``configs/_base_/default_runtime.py`` does).
"""
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

__all__ = [
    'RandomStateHook', 'get_random_states', 'set_random_states', 'RANDOM_STATES_KEY',
    'call_after_dataloader_advance'
]

#: Top-level checkpoint key under which :class:`RandomStateHook` stores the states.
RANDOM_STATES_KEY = 'random_states'
_FORMAT = 1


def _cuda_states():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return []


def get_random_states():
    """The Python, numpy, torch (and initialised CUDA) generator states as weights-only-safe data.

    Python's ``random.getstate()`` (a tuple of 625 ints) and numpy's legacy
    MT19937 key (a uint32 array) become int64 tensors; the rest are plain
    ints / floats / ``None``; torch's states are uint8 tensors.
    """
    py_version, py_state, py_gauss = random.getstate()
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        'python': {
            'version': int(py_version),
            'state': torch.tensor(py_state, dtype=torch.int64),
            'gauss_next': None if py_gauss is None else float(py_gauss),
        },
        'numpy': {
            'kind': str(kind),
            'key': torch.from_numpy(np.asarray(key, dtype=np.int64)),
            'pos': int(pos),
            'has_gauss': int(has_gauss),
            'cached_gaussian': float(cached_gaussian),
        },
        'torch': torch.get_rng_state().clone(),
        'cuda': _cuda_states(),
    }


def set_random_states(states):
    """Inverse of :func:`get_random_states`."""
    py = states['python']
    random.setstate((py['version'], tuple(int(v) for v in py['state'].tolist()),
                     py['gauss_next']))
    npy = states['numpy']
    np.random.set_state((npy['kind'], npy['key'].numpy().astype(np.uint32), npy['pos'],
                         npy['has_gauss'], npy['cached_gaussian']))
    torch.set_rng_state(states['torch'].to(torch.uint8).cpu())
    cuda = states.get('cuda') or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class _CallBeforeNextBatch:
    """Stands in for ``IterBasedTrainLoop.dataloader_iterator`` during mmengine's advance.

    Passes ``skip`` batches through untouched (the consumed ones), then calls
    ``fn`` right before fetching the first new batch, and puts the iterator it
    wraps back on the loop. Stacks: a second one wraps the first.
    """

    def __init__(self, loop, iterator, skip, fn):
        self._loop = loop
        self._iterator = iterator
        self._skip = skip
        self._fn = fn

    def __iter__(self):
        return self

    def __next__(self):
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        self._loop.dataloader_iterator = self._iterator
        self._fn()
        return next(self._iterator)

    def __getattr__(self, name):
        if name.startswith('__') or name == '_iterator':
            raise AttributeError(name)
        return getattr(self._iterator, name)


def call_after_dataloader_advance(loop, fn):
    """Run ``fn`` once mmengine has skipped the batches a resumed run already consumed.

    On resume, ``IterBasedTrainLoop.run`` calls ``before_train_epoch`` and then
    ``next(dataloader_iterator)`` ``_iter`` times (running the data pipeline)
    before the first new batch. Called from ``before_train_epoch``, this runs
    ``fn`` right before that first new batch is fetched and returns True; for
    a loop without that advance (epoch-based, or ``_iter == 0``) it returns
    False and does nothing.
    """
    iterator = getattr(loop, 'dataloader_iterator', None)
    skip = getattr(loop, '_iter', 0)
    if iterator is None or skip <= 0:
        return False
    loop.dataloader_iterator = _CallBeforeNextBatch(loop, iterator, skip, fn)
    return True


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the RNG states in checkpoints and restore them on resume (exact resume).

    Args:
        isolate_val (bool): put the training generators back after each
            validation run, so that validation never changes the training
            randomness (and a checkpoint saved before a validation resumes
            exactly). Default: True.
    """

    # After LoggerHook (BELOW_NORMAL), before CheckpointHook (VERY_LOW): the states gathered in
    # ``after_train_iter`` are those of the moment the checkpoint is written.
    priority = 'LOW'

    def __init__(self, isolate_val=True):
        self.isolate_val = isolate_val
        self._pending = None
        self._pending_iter = None
        self._val_snapshot = None
        self._gathered = None  # (meta iter, [states of rank 0, 1, ...])

    # --- saving --------------------------------------------------------------------------
    # ``Runner.save_checkpoint`` (and so ``before_save_checkpoint``) runs on rank 0 only. The
    # other ranks' states are therefore gathered beforehand, by all ranks, in
    # ``after_train_iter`` / ``after_train_epoch`` of the iterations / epochs at which a
    # CheckpointHook of the runner is going to save.
    @staticmethod
    def _checkpoint_hooks(runner):
        from mmengine.hooks import CheckpointHook
        return [h for h in runner.hooks if isinstance(h, CheckpointHook)]

    def _gather(self, meta_iter):
        self._gathered = (meta_iter, all_gather_object(get_random_states()))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if get_world_size() == 1:
            return
        for hook in self._checkpoint_hooks(runner):
            if not hook.by_epoch and (
                    hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                    or (hook.save_last and hook.is_last_train_iter(runner))):
                self._gather(runner.iter + 1)
                return

    def after_train_epoch(self, runner):
        if get_world_size() > 1 and any(h.by_epoch for h in self._checkpoint_hooks(runner)):
            self._gather(runner.iter)

    def before_save_checkpoint(self, runner, checkpoint):
        world_size = get_world_size()
        meta_iter = checkpoint.get('meta', {}).get('iter')
        if self._val_snapshot is not None:
            # A checkpoint saved during validation (best checkpoint): the training states.
            ranks = [self._val_snapshot]
        elif world_size > 1 and self._gathered is not None and self._gathered[0] == meta_iter:
            ranks = list(self._gathered[1])
        else:
            ranks = [get_random_states()]
        if world_size > 1 and len(ranks) < world_size:
            runner.logger.warning(
                'RandomStateHook: this checkpoint holds the random states of rank 0 only '
                '(it was not saved by a CheckpointHook at a train iteration/epoch); other '
                'ranks will continue from the seed when resuming from it.')
        checkpoint[RANDOM_STATES_KEY] = {
            'format': _FORMAT,
            'world_size': world_size,
            'ranks': ranks,
        }

    # --- restoring -----------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint):
        self._pending = checkpoint.get(RANDOM_STATES_KEY)
        self._pending_iter = checkpoint.get('meta', {}).get('iter')
        if self._pending is None:
            runner.logger.warning(
                'RandomStateHook: the loaded checkpoint has no random states (saved without '
                'RandomStateHook); if this is a resume, randomness continues from the seed, '
                'not from the checkpoint.')

    def before_train_epoch(self, runner):
        pending, self._pending = self._pending, None
        if pending is None:
            return
        loop = runner.train_loop
        if runner.iter == 0 or runner.iter != self._pending_iter:
            return  # ``load_from`` (fine-tuning), not a resume
        rank, saved = get_rank(), pending.get('ranks') or []
        if pending.get('world_size') != get_world_size():
            runner.logger.warning(
                f'RandomStateHook: the checkpoint was saved by {pending.get("world_size")} '
                f'process(es), this run has {get_world_size()}: the data is sharded differently, '
                'so the resumed run cannot repeat the uninterrupted one exactly.')
        if rank >= len(saved):
            runner.logger.warning(f'RandomStateHook: no random states for rank {rank}; '
                                  'randomness continues from the seed.')
            return
        states = saved[rank]

        def restore():
            set_random_states(states)
            runner.logger.info(
                f'RandomStateHook: restored the torch/numpy/python random states of '
                f'iteration {self._pending_iter} (rank {rank}).')

        # IterBasedTrainLoop: mmengine now advances the dataloader by ``_iter`` batches
        # (running the pipeline); restore right after that, before the next batch.
        if not call_after_dataloader_advance(loop, restore):
            restore()

    # --- validation does not touch the training randomness ------------------------------
    def before_val(self, runner):
        if self.isolate_val and self._in_training(runner):
            self._val_snapshot = get_random_states()

    def after_val(self, runner):
        snapshot, self._val_snapshot = self._val_snapshot, None
        if snapshot is not None:
            set_random_states(snapshot)

    @staticmethod
    def _in_training(runner):
        loop = getattr(runner, '_train_loop', None)
        return loop is not None and not isinstance(loop, dict)
