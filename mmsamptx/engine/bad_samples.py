"""Bad training data: a corrupt image or mask names the file, then stops the run or is skipped.

Without this, a corrupt image fails inside mmcv's ``LoadImageFromFile``
(``AssertionError: failed to load image: <path>``) and a corrupt mask inside
mmseg's ``LoadAnnotations`` (``AttributeError: 'NoneType' object has no
attribute 'squeeze'``, no file name at all); either ends the run. mmengine's
``BaseDataset`` only retries (``max_refetch`` random other samples, drawing
from the global numpy generator) when the *pipeline returns None*, not on an
exception.

:class:`SkipBadSamples` (registered in mmseg's ``DATASETS``) wraps any
dataset. When ``dataset[idx]`` raises, it checks the sample's files (every
``*_path`` entry of ``get_data_info(idx)``: read through mmengine's file
I/O, images decoded with mmcv) to find the culprit, then

* ``on_error='stop'``: raises :class:`BadSampleError` naming the file, what is
  wrong with it and the pipeline's error (through a DataLoader worker too:
  the worker re-raises it in the main process as a ``BadSampleError``);
* ``on_error='skip'``: logs a warning naming the file (once per file and
  process), counts the skip and returns the next index's sample instead
  (deterministic, no random draw, so exact resume is unaffected). More than
  ``max_consecutive`` bad samples in a row raise :class:`BadSampleError`.

An exception for which no file is at fault (a bug in a transform, a wrong
config) is re-raised as it is, with a note naming the sample's files, in
both modes, unless ``catch='any'``: skipping would hide it.

The skip count lives in shared memory (``multiprocessing.Value``), so the
skips made in DataLoader worker processes count too. :class:`BadSampleCounterHook`
writes it to the training log as the ``bad_samples_skipped`` scalar (summed
over ranks; kept across resumes in the message hub; the batches that a
resumed run replays to skip the consumed data are not counted twice).

Config::

    train_dataloader = dict(..., dataset=dict(
        type='SkipBadSamples', on_error='skip',   # or 'stop'
        dataset=dict(type='ADE20KDataset', ...)))
    custom_hooks = [dict(type='BadSampleCounterHook')]

or ``tools/train.py CONFIG --bad-data skip`` (see :func:`configure_bad_data`).
"""
import logging
import multiprocessing
import os.path as osp

import mmcv
from mmengine import fileio
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmseg.registry import DATASETS, HOOKS

__all__ = [
    'SkipBadSamples', 'BadSampleError', 'BadSampleCounterHook', 'check_sample_file',
    'configure_bad_data'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.gif', '.ppm',
                    '.pgm', '.pbm', '.jp2')


class BadSampleError(RuntimeError):
    """A training sample's file is missing, unreadable or cannot be decoded."""

    @staticmethod
    def summary(error):
        """The error's own message, without the worker traceback that a DataLoader adds.

        A DataLoader worker's exception is re-raised in the main process as
        ``BadSampleError('Caught BadSampleError in DataLoader worker process
        0.\nOriginal Traceback ...\n...BadSampleError: <message>')``.
        """
        text = str(error)
        if 'Original Traceback' not in text:
            return text
        lines = [line for line in text.splitlines() if line.strip()]
        for line in reversed(lines):
            head, sep, message = line.partition('BadSampleError: ')
            if sep and not head.strip(' .').count(' '):
                return message + ' (in a DataLoader worker)'
        return text


def check_sample_file(path, backend_args=None):
    """What is wrong with ``path`` (a short text), or None if it reads (and decodes)."""
    try:
        data = fileio.get(path, backend_args=backend_args)
    except FileNotFoundError:
        return 'file not found'
    except Exception as e:  # noqa: BLE001 (any read error is the answer)
        return f'cannot be read ({type(e).__name__}: {e})'
    if osp.splitext(str(path))[1].lower() not in IMAGE_EXTENSIONS:
        return None
    if not data:
        return 'empty file'
    try:
        img = mmcv.imfrombytes(data, flag='unchanged')
    except Exception as e:  # noqa: BLE001
        return f'cannot be decoded as an image ({type(e).__name__}: {e})'
    if img is None:
        return 'cannot be decoded as an image (corrupt or not an image)'
    return None


def _one_line(error):
    text = ' '.join(str(error).split())
    return f'{type(error).__name__}: {text[:300]}'


@DATASETS.register_module()
class SkipBadSamples:
    """Dataset wrapper: a sample whose files are corrupt stops the run (naming it) or is skipped.

    Args:
        dataset (dict | Dataset): the wrapped dataset or its config.
        on_error (str): ``'stop'`` or ``'skip'``.
        max_consecutive (int): in ``'skip'`` mode, how many bad samples in a
            row (``idx``, ``idx + 1``, ...) are tolerated before giving up.
        catch (str): ``'decode'`` (default): only exceptions for which a
            file of the sample is missing / unreadable / undecodable count as
            bad data; others are re-raised. ``'any'``: every exception of the
            sample's loading counts as bad data.
    """

    def __init__(self, dataset, on_error='skip', max_consecutive=10, catch='decode'):
        if on_error not in ('stop', 'skip'):
            raise ValueError(f"SkipBadSamples: on_error must be 'stop' or 'skip', got {on_error!r}")
        if catch not in ('decode', 'any'):
            raise ValueError(f"SkipBadSamples: catch must be 'decode' or 'any', got {catch!r}")
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset
        self.on_error = on_error
        self.max_consecutive = int(max_consecutive)
        self.catch = catch
        # Shared with DataLoader workers (inherited at fork, or passed when spawning).
        self._skipped = multiprocessing.Value('q', 0)
        self._warned = set()

    # --- the Dataset interface -----------------------------------------------------------
    @property
    def metainfo(self):
        return self.dataset.metainfo

    def full_init(self):
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

    def __len__(self):
        return len(self.dataset)

    def get_data_info(self, idx):
        return self.dataset.get_data_info(idx)

    def __getattr__(self, name):
        if name.startswith('__') or name in ('dataset', '_skipped', '_warned'):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @property
    def skipped(self):
        """How many times a bad sample was replaced (in this process and its workers)."""
        return int(self._skipped.value)

    def __getitem__(self, idx):
        n = len(self.dataset)
        reports = []
        for k in range(self.max_consecutive + 1):
            j = (idx + k) % n
            try:
                return self.dataset[j]
            except Exception as error:  # noqa: BLE001 (diagnosed below, re-raised if not data)
                report = self._diagnose(j, error)
                if report is None:
                    raise
                if self.on_error == 'stop':
                    raise BadSampleError(
                        f'{report}. Stopping (SkipBadSamples on_error=stop); fix or remove the '
                        "file, or use on_error='skip'.") from error
                with self._skipped.get_lock():
                    self._skipped.value += 1
                self._warn(j, report)
                reports.append(report)
        raise BadSampleError(
            f'{len(reports)} bad training samples in a row (indices {idx}..{(idx + k) % n}); '
            'is the data or the pipeline broken? ' + ' | '.join(reports))

    # --- diagnosis -----------------------------------------------------------------------
    def _files(self, idx):
        try:
            info = self.dataset.get_data_info(idx)
        except Exception:  # noqa: BLE001 (a dataset without per-sample info)
            return {}
        return {k: v for k, v in (info or {}).items()
                if k.endswith('_path') and isinstance(v, str) and v}

    def _diagnose(self, idx, error):
        """The report for a bad sample, or None when the error is not the data's fault."""
        files = self._files(idx)
        backend_args = getattr(self.dataset, 'backend_args', None)
        problems = [(key, path, reason) for key, path in files.items()
                    if (reason := check_sample_file(path, backend_args)) is not None]
        if problems:
            what = '; '.join(f'{path} ({key}): {reason}' for key, path, reason in problems)
            return f'bad training sample {idx}: {what} [pipeline: {_one_line(error)}]'
        if self.catch == 'any':
            names = ', '.join(files.values()) or f'index {idx}'
            return f'bad training sample {idx} ({names}): {_one_line(error)}'
        if hasattr(error, 'add_note'):
            names = ', '.join(f'{k}={v}' for k, v in files.items()) or 'no file names known'
            error.add_note(f'SkipBadSamples: while loading sample {idx} ({names}); its files read '
                           "and decode fine, so this is not treated as bad data (catch='decode').")
        return None

    def _warn(self, idx, report):
        key = tuple(sorted(self._files(idx).values())) or idx
        if key in self._warned:
            return
        self._warned.add(key)
        print_log(f'SkipBadSamples: skipped {report}; using the next sample instead.',
                  logger='current', level=logging.WARNING)


def _find_wrappers(dataset, seen=None):
    seen = set() if seen is None else seen
    if dataset is None or id(dataset) in seen:
        return []
    seen.add(id(dataset))
    found = [dataset] if isinstance(dataset, SkipBadSamples) else []
    inner = dataset.__dict__.get('dataset') if hasattr(dataset, '__dict__') else None
    found += _find_wrappers(inner, seen)
    for d in (dataset.__dict__.get('datasets') or []) if hasattr(dataset, '__dict__') else []:
        found += _find_wrappers(d, seen)
    return found


@HOOKS.register_module()
class BadSampleCounterHook(Hook):
    """Log how many bad training samples :class:`SkipBadSamples` skipped (``bad_samples_skipped``).

    Does nothing when the training dataset has no ``SkipBadSamples`` wrapper.
    """

    priority = 'NORMAL'

    def __init__(self):
        self._wrappers = []
        self._base = 0
        self._offset = None
        self._last = 0

    def _local(self):
        return sum(w.skipped for w in self._wrappers)

    def before_train(self, runner):
        self._wrappers = _find_wrappers(runner.train_dataloader.dataset)
        self._base = int(runner.message_hub.get_info('bad_samples_skipped', 0) or 0)
        self._last = self._base
        self._offset = 0

    def before_train_epoch(self, runner):
        if not self._wrappers:
            return
        from .random_state import call_after_dataloader_advance

        def after_advance():
            # The replayed (already trained) batches' skips were counted before the resume.
            self._offset = self._local()

        call_after_dataloader_advance(runner.train_loop, after_advance)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not self._wrappers:  # the same on every rank (same config)
            return
        import torch
        count = torch.tensor([float(self._local() - (self._offset or 0))])
        if get_world_size() > 1:
            all_reduce(count, op='sum')
        total = self._base + int(count.item())
        if total > 0:
            runner.message_hub.update_scalar('train/bad_samples_skipped', total)
        if total != self._last:
            runner.message_hub.update_info('bad_samples_skipped', total)
            self._last = total


def configure_bad_data(cfg, on_error):
    """Wrap ``cfg.train_dataloader.dataset`` in ``SkipBadSamples(on_error=...)``; add the counter.

    An existing ``SkipBadSamples`` only gets its ``on_error`` changed. Returns ``cfg``.
    """
    loader = cfg.train_dataloader
    dataset = loader.dataset
    if dataset.get('type') in ('SkipBadSamples', SkipBadSamples):
        dataset['on_error'] = on_error
    else:
        loader.dataset = dict(type='SkipBadSamples', dataset=dataset, on_error=on_error)
    hooks = list(cfg.get('custom_hooks', None) or [])
    if not any(h.get('type') in ('BadSampleCounterHook', BadSampleCounterHook) for h in hooks):
        hooks.append(dict(type='BadSampleCounterHook'))
    cfg.custom_hooks = hooks
    return cfg
