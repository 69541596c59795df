"""Shared fixtures: SAM checkpoints in the official key format, made from segment_anything's classes."""
import os

import pytest
import torch
from sam_helpers import build_reference_sam, randomise_zero_inits

# Keep the suite reproducible and light on a 2-core machine.
# Under pytest-xdist (`make test` runs 2 workers), one thread per worker.
torch.set_num_threads(1 if os.environ.get('PYTEST_XDIST_WORKER') else min(2, os.cpu_count() or 1))
# tools/train.py's start-of-training memory probe runs extra training steps: off in the suite
# (tests/test_tools/test_estimate_memory.py turns it on where it is tested); tool subprocesses
# inherit it.
os.environ.setdefault('MMSAMPTX_MEMORY_ESTIMATE', '0')


@pytest.fixture(autouse=True, scope='session')
def mmseg_scope():
    """Build components as configs do: in mmseg's scope, with mmsamptx registered."""
    import mmsamptx  # noqa: F401
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')


@pytest.fixture(scope='session')
def tiny_sam_checkpoint(tmp_path_factory):
    """(path, reference Sam) for a 64-px tiny SAM saved as one official-format state dict."""
    torch.manual_seed(0)
    sam = randomise_zero_inits(build_reference_sam(64)).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'sam_tiny.pth'
    torch.save(sam.state_dict(), path)
    return str(path), sam


def _drop_closed_log_streams():
    """Remove log handlers whose stream is closed, from every logger.

    Loggers outlive tests (mmengine keeps each MMLogger by name, logging keeps
    every named logger): a handler created while an earlier test captured
    stdout still writes to that test's closed capture, and logging prints a
    'Logging error' traceback into whichever later test logs through it.
    """
    import logging

    from mmengine.logging import MMLogger
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ] + list(MMLogger._instance_dict.values())
    for logger in loggers:
        for handler in list(logger.handlers):
            if getattr(getattr(handler, 'stream', None), 'closed', False):
                logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def no_closed_log_streams():
    """Each test starts and ends with no handler bound to a closed (captured) stream."""
    _drop_closed_log_streams()
    yield
    _drop_closed_log_streams()
