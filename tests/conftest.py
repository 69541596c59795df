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
    """Mend log handlers left bound to a closed stream, in every logger.

    Loggers outlive tests (mmengine keeps each MMLogger by name and logs
    through the latest one, logging keeps every named logger): a console
    handler created while an earlier test captured stdout still writes to that
    test's closed capture (logging then prints a 'Logging error' traceback into
    whichever later test logs through it, and the message is lost), and a
    closed log file's handler has no stream (mmengine writes to it directly).
    Console handlers are pointed at the current stdout (looked up at each
    write, so a later test's capture sees them); closed file handlers are
    removed.
    """
    import logging

    from mmengine.logging import MMLogger
    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ] + list(MMLogger._instance_dict.values())
    for logger in loggers:
        for handler in list(logger.handlers):
            stream = getattr(handler, 'stream', None)
            if isinstance(handler, logging.FileHandler):
                if stream is None or getattr(stream, 'closed', False):
                    logger.removeHandler(handler)
            elif isinstance(handler, logging.StreamHandler) and getattr(stream, 'closed', False):
                handler.stream = _CURRENT_STDOUT  # not setStream: it would flush the closed stream


class _CurrentStdout:
    """A stream that writes to whatever ``sys.stdout`` is at the time (a test's capture included)."""
    closed = False

    def write(self, text):
        import sys
        return sys.stdout.write(text)

    def flush(self):
        import sys
        sys.stdout.flush()


_CURRENT_STDOUT = _CurrentStdout()


@pytest.fixture(autouse=True)
def no_closed_log_streams():
    """Each test starts and ends with no handler bound to a closed stream."""
    _drop_closed_log_streams()
    yield
    _drop_closed_log_streams()
