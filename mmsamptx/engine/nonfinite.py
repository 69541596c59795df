"""Non-finite losses: stop with a clear error, or skip the optimizer step; never save a NaN model.

Where the check sits. mmengine's training step is ``model.train_step(data,
optim_wrapper)`` (``BaseModel.train_step`` and ``MMDistributedDataParallel.
train_step`` alike): forward, ``parse_losses`` (which sums the ``loss*``
entries into one tensor and returns ``log_vars``, one entry per term), then
``optim_wrapper.update_params(loss)`` = backward + step + zero_grad. The one
point that sees the loss *before* backward and step, for every model and
every optimizer-wrapper class (``OptimWrapper``, ``AmpOptimWrapper``, a
custom one), is ``update_params``. :class:`NonFiniteLossHook` therefore wraps
``update_params`` of the built wrapper(s) in ``before_train`` (one instance
attribute, no subclass, so ``--amp`` and custom wrappers keep working):

* finite loss: the original ``update_params`` runs unchanged;
* non-finite loss (in *any* process: the flag is all-reduced, so that all
  ranks agree and none waits in DDP's gradient all-reduce): neither backward
  nor ``optimizer.step`` runs, the parameters and the optimizer state stay as
  they were. The wrapper's inner counter still advances so that gradient
  accumulation stays aligned with the iterations (a partially accumulated
  window that would be applied on this iteration is dropped).

``train_step`` then returns ``log_vars``, and the hook's ``after_train_iter``
(priority ``ABOVE_NORMAL``: before ``LoggerHook`` and ``CheckpointHook``)
names the iteration and the non-finite terms (e.g. ``decode.loss_ce=nan``):

* ``action='stop'``: logs the error and raises :class:`NonFiniteLossError`.
  No checkpoint is written for that iteration (the checkpoint hook runs
  later), so ``last_checkpoint`` still names the last good checkpoint.
* ``action='skip'``: logs a warning and counts the skip; the count is the
  ``nonfinite_skips`` scalar of the training log (and ``scalars.json``),
  kept across resumes in the message hub.

With ``check_checkpoint=True`` (default) ``before_save_checkpoint`` also
refuses to save a model whose parameters or buffers are non-finite (e.g.
BatchNorm statistics poisoned by a NaN input), raising
:class:`NonFiniteModelError` that names the tensors: a non-finite model is
never saved over a good one. (``Runner.save_checkpoint`` runs on rank 0 only,
so in a distributed run rank 0 raises and the launcher stops the others.)

Enable: ``custom_hooks = [dict(type='NonFiniteLossHook', action='stop')]``
(``'skip'`` to skip); the project's ``default_runtime.py`` has ``'stop'``.
"""
import functools
import math
import os.path as osp

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.optim import OptimWrapperDict
from mmseg.registry import HOOKS

__all__ = ['NonFiniteLossHook', 'NonFiniteLossError', 'NonFiniteModelError', 'configure_nonfinite']

_GUARD_ATTR = '_mmsamptx_nonfinite_guard'


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (``NonFiniteLossHook(action='stop')``)."""


class NonFiniteModelError(FloatingPointError):
    """A checkpoint was about to store non-finite parameters or buffers."""


def _fmt(value):
    try:
        v = float(value.detach() if isinstance(value, torch.Tensor) else value)
    except (TypeError, ValueError, RuntimeError):
        return str(value)
    if math.isnan(v):
        return 'nan'
    if math.isinf(v):
        return 'inf' if v > 0 else '-inf'
    return f'{v:.4g}'


def _is_finite(value):
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value.detach()).all())
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return True


def _nonfinite_terms(outputs):
    """``[(name, value)]`` of the non-finite loss entries of ``log_vars``; the sum last."""
    if not isinstance(outputs, dict):
        return []
    bad = [(k, v) for k, v in outputs.items() if 'loss' in k and not _is_finite(v)]
    terms = [(k, v) for k, v in bad if k != 'loss']
    return terms or bad


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop on, or skip the optimizer step of, an iteration whose loss is NaN/Inf.

    Args:
        action (str): ``'stop'`` (raise :class:`NonFiniteLossError`) or
            ``'skip'`` (no backward, no optimizer step; counted in the log).
        check_checkpoint (bool): refuse to save a checkpoint whose
            ``state_dict`` has non-finite values. Default: True.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, action='stop', check_checkpoint=True):
        if action not in ('stop', 'skip'):
            raise ValueError(f"NonFiniteLossHook: action must be 'stop' or 'skip', got {action!r}")
        self.action = action
        self.check_checkpoint = check_checkpoint
        self.skips = 0
        self._flagged = False

    # --- the guard on update_params ------------------------------------------------------
    def before_train(self, runner):
        self.skips = int(runner.message_hub.get_info('nonfinite_skips', 0) or 0)
        wrapper = runner.optim_wrapper
        wrappers = list(wrapper.values()) if isinstance(wrapper, OptimWrapperDict) else [wrapper]
        for w in wrappers:
            self._install(w)

    def _install(self, wrapper):
        current = getattr(wrapper, _GUARD_ATTR, None)
        if current is not None:
            current['hook'] = self  # re-installed (a second runner.train()): point at this hook
            return
        original = wrapper.update_params
        guard = {'hook': self}

        @functools.wraps(original)
        def update_params(loss, *args, **kwargs):
            if guard['hook']._loss_is_finite(loss):
                return original(loss, *args, **kwargs)
            guard['hook']._flagged = True
            # No backward, no step: parameters and optimizer state are untouched.
            wrapper._inner_count += 1
            if wrapper.should_update():
                wrapper.zero_grad()
            return None

        wrapper.update_params = update_params
        setattr(wrapper, _GUARD_ATTR, guard)

    @staticmethod
    def _loss_is_finite(loss):
        if not isinstance(loss, torch.Tensor):
            return _is_finite(loss)
        bad = (~torch.isfinite(loss.detach())).any().to(torch.float32).reshape(1)
        if get_world_size() > 1:
            all_reduce(bad, op='sum')  # every rank skips (or stops) together
        return bool(bad.item() == 0)

    # --- report, stop or count -----------------------------------------------------------
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._flagged = False

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        terms = _nonfinite_terms(outputs)
        flagged, self._flagged = self._flagged, False
        if not flagged and not terms:
            return
        iteration = runner.iter + 1  # as in the log lines and in iter_N.pth
        if terms:
            what = ', '.join(f'{name}={_fmt(value)}' for name, value in terms)
            what += f" (term{'s' if len(terms) > 1 else ''}: {', '.join(n for n, _ in terms)})"
        else:
            what = 'the loss of another process (this process\' terms are finite)'
        if not flagged:  # the model's own train_step bypassed update_params
            step = ('it did not go through optim_wrapper.update_params, so the optimizer '
                    'step of this iteration may have been taken')
        else:
            step = 'the optimizer step of this iteration was not taken'
        if self.action == 'stop':
            message = (f'Non-finite loss at iteration {iteration}: {what}; {step}. Training '
                       'stops (NonFiniteLossHook action=stop); '
                       f'{self._last_checkpoint_text(runner)}')
            runner.logger.error(message)
            raise NonFiniteLossError(message)
        self.skips += 1
        runner.message_hub.update_info('nonfinite_skips', self.skips)
        runner.message_hub.update_scalar('train/nonfinite_skips', self.skips)
        runner.logger.warning(
            f'Non-finite loss at iteration {iteration}: {what}; {step} '
            f'(NonFiniteLossHook action=skip; {self.skips} skipped iteration(s) so far).')

    @staticmethod
    def _last_checkpoint_text(runner):
        path = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.isfile(path):
            with open(path) as f:
                return f'the last checkpoint is {f.read().strip()}.'
        return 'no checkpoint was saved before.'

    # --- never save a non-finite model ---------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint):
        if not self.check_checkpoint:
            return
        bad = [name for name, t in (checkpoint.get('state_dict') or {}).items()
               if isinstance(t, torch.Tensor) and t.is_floating_point()
               and not bool(torch.isfinite(t).all())]
        if bad:
            shown = ', '.join(bad[:8]) + (f' (+{len(bad) - 8} more)' if len(bad) > 8 else '')
            message = (f'Refusing to save the checkpoint of iteration '
                       f'{checkpoint.get("meta", {}).get("iter", runner.iter)}: non-finite '
                       f'values in {shown}. {self._last_checkpoint_text(runner)}')
            runner.logger.error(message)
            raise NonFiniteModelError(message)


def configure_nonfinite(cfg, action):
    """Set the ``action`` of the config's ``NonFiniteLossHook`` (adding one if absent).

    Returns ``cfg``.
    """
    hooks = list(cfg.get('custom_hooks', None) or [])
    for hook in hooks:
        if hook.get('type') in ('NonFiniteLossHook', NonFiniteLossHook):
            hook['action'] = action
            break
    else:
        hooks.append(dict(type='NonFiniteLossHook', action=action))
    cfg.custom_hooks = hooks
    return cfg
