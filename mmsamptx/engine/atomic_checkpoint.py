"""Atomic checkpoint saving: a crash never leaves a torn checkpoint or a dangling ``last_checkpoint``.

mmengine 0.10.7 writes a checkpoint with ``open(path, 'wb').write(...)``
(``Runner.save_checkpoint`` -> ``mmengine.runner.checkpoint.save_checkpoint``
-> ``get_file_backend(path, backend_args).put(bytes, path)``), writes
``work_dir/last_checkpoint`` with a plain ``open(..., 'w')``, and its
``CheckpointHook`` deletes the oldest checkpoint (``max_keep_ckpts``) and the
previous best checkpoint *before* writing the new one. A crash or kill during
the write can thus leave a truncated ``iter_N.pth`` that ``last_checkpoint``
already names, and no intact checkpoint at all.

This module fixes that without touching mmengine:

* :class:`AtomicLocalBackend`, registered as the mmengine file backend
  ``'atomic_local'``: ``put``/``put_text`` go through
  :func:`mmsamptx.utils.atomic_write` (temporary file in the same folder,
  flush + fsync, ``os.replace``, fsync of the folder). Any
  ``save_checkpoint(..., backend_args=dict(backend='atomic_local'))`` is atomic.
* :class:`AtomicCheckpointHook`, a drop-in ``CheckpointHook`` (same arguments)
  registered in mmseg's ``HOOKS`` registry. For a local ``out_dir`` it passes
  ``backend_args=dict(backend='atomic_local')`` to ``Runner.save_checkpoint``,
  writes ``last_checkpoint`` atomically *after* the checkpoint is in place,
  and only then prunes the checkpoints that fall out of ``max_keep_ckpts``
  and the previous best checkpoint. Published checkpoints
  (``published_keys``) are written atomically too.

Enabling it in a config (the project's ``tools/train.py`` also upgrades a
plain ``default_hooks.checkpoint`` of type ``'CheckpointHook'`` to it)::

    custom_imports = dict(imports=['mmsamptx', 'mmsamptx.engine'],
                          allow_failed_imports=False)
    default_hooks = dict(
        checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                        interval=4000, max_keep_ckpts=3))

For a remote ``out_dir`` (``s3://`` ...) or explicit non-local
``backend_args`` the hook behaves like mmengine's ``CheckpointHook`` for the
write itself (object stores replace whole objects anyway), but still prunes
only after the new checkpoint is saved.
"""
import contextlib
import hashlib
import io
import os
import os.path as osp
import pickle
import re

import torch

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.fileio.io import _parse_uri_prefix
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmseg.registry import HOOKS

from mmsamptx.utils import atomic_write

__all__ = ['AtomicLocalBackend', 'AtomicCheckpointHook', 'ATOMIC_BACKEND_ARGS']

# ``atomic_write``'s temporary names: '.' + final name + '.' + mkstemp's random part + '.tmp'.
_STALE_TMP = re.compile(r'^\.(?:.+\.pth|last_checkpoint)\.[A-Za-z0-9_]+\.tmp$')

#: ``backend_args`` that make mmengine's file I/O atomic for local paths.
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


def _write_atomically(data, filepath):
    """Write ``data`` (bytes) through :func:`atomic_write`."""
    with atomic_write(filepath, 'wb') as f:
        f.write(data)


class AtomicLocalBackend(LocalBackend):
    """mmengine ``LocalBackend`` whose writes are atomic (temp file, fsync, rename)."""

    def put(self, obj, filepath):
        _write_atomically(obj, filepath)

    def put_text(self, obj, filepath, encoding='utf-8'):
        self.put(obj.encode(encoding), filepath)


register_backend('atomic_local', AtomicLocalBackend, force=True)


class _DeferRemoval:
    """Proxy for a file backend that records ``remove``/``rmtree`` instead of doing them."""

    def __init__(self, backend):
        self._backend = backend
        self.pending = []

    def remove(self, filepath):
        self.pending.append(('remove', filepath))

    def rmtree(self, dir_path):
        self.pending.append(('rmtree', dir_path))

    def __getattr__(self, name):
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose saves are atomic and whose pruning happens after the save.

    Accepts exactly :class:`mmengine.hooks.CheckpointHook`'s arguments.
    """

    atomic = False  # set in ``before_train`` once ``out_dir`` is known

    def before_train(self, runner):
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        local = _parse_uri_prefix(str(out_dir)) == ''
        plain_args = self.backend_args in (None, {}, {'backend': 'local'}, ATOMIC_BACKEND_ARGS)
        self.atomic = bool(local and self.file_client_args is None and plain_args)
        if self.atomic:
            self.backend_args = dict(ATOMIC_BACKEND_ARGS)
        else:
            runner.logger.warning(
                'AtomicCheckpointHook: out_dir/backend is not a local folder; '
                'the checkpoint write itself is not atomic (pruning still waits '
                'for the new checkpoint).')
        super().before_train(runner)
        if self.atomic and is_main_process():
            self._remove_stale_temporaries(runner)

    def _remove_stale_temporaries(self, runner):
        """Remove temp files a killed save left behind (``.iter_8.pth.k3j2x9a1.tmp``)."""
        for folder in {str(self.out_dir), str(runner.work_dir)}:
            if not osp.isdir(folder):
                continue
            for name in os.listdir(folder):
                if _STALE_TMP.match(name):
                    with contextlib.suppress(OSError):
                        os.remove(osp.join(folder, name))
                        runner.logger.info(f'Removed an unfinished checkpoint write: {name}')

    # --- the periodic checkpoint -------------------------------------------------------
    def _save_checkpoint_with_step(self, runner, step, meta):
        """As mmengine's, but: save, then point ``last_checkpoint`` at it, then prune."""
        to_prune = []
        if self.max_keep_ckpts > 0:
            if len(self.keep_ckpt_ids) > 0 and self.keep_ckpt_ids[-1] == step:
                pass
            else:
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    _step = self.keep_ckpt_ids.popleft()
                    to_prune.append(
                        self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(_step)))
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)

        if not is_main_process():
            return

        # The new checkpoint is complete on disk: now name it, then prune.
        _write_atomically(
            str(self.last_ckpt).encode('utf-8'), osp.join(runner.work_dir, 'last_checkpoint'))
        for path in to_prune:
            self._prune(path)

    def _prune(self, path):
        if path == self.last_ckpt:
            return
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are folders
            self.file_backend.rmtree(path)

    # --- the best checkpoint -----------------------------------------------------------
    def _save_best_checkpoint(self, runner, metrics):
        """As mmengine's, but the previous best file is removed after the new one is saved."""
        backend = self.file_backend
        proxy = _DeferRemoval(backend)
        self.file_backend = proxy
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
        keep = {str(self.last_ckpt)}
        if getattr(self, 'best_ckpt_path', None):
            keep.add(str(self.best_ckpt_path))
        keep.update(str(p) for p in (getattr(self, 'best_ckpt_path_dict', None) or {}).values() if p)
        for op, path in proxy.pending:
            if str(path) in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                getattr(backend, op)(path)

    # --- published checkpoints ---------------------------------------------------------
    def _publish_model(self, runner, ckpt_path):
        """As mmengine's, but the published file is written atomically."""
        if not is_main_process():
            return
        from mmengine.runner.checkpoint import _load_checkpoint
        checkpoint = _load_checkpoint(ckpt_path)
        assert self.published_keys is not None
        removed_keys = [key for key in list(checkpoint.keys()) if key not in self.published_keys]
        for key in removed_keys:
            checkpoint.pop(key)
        if removed_keys:
            print_log(
                f'Key {removed_keys} will be removed because they are not '
                'found in published_keys. If you want to keep them, '
                f'please set `{removed_keys}` in published_keys',
                logger='current')
        sha = hashlib.sha256(pickle.dumps(checkpoint)).hexdigest()
        final_path = osp.splitext(ckpt_path)[0] + f'-{sha[:8]}.pth'
        if self.atomic:
            buffer = io.BytesIO()
            torch.save(checkpoint, buffer)
            _write_atomically(buffer.getvalue(), final_path)
        else:
            from mmengine.runner import save_checkpoint
            save_checkpoint(checkpoint, final_path, backend_args=self.backend_args)
        print_log(f'The checkpoint ({ckpt_path}) is published to {final_path}.', logger='current')
