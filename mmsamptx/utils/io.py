"""Atomic file writes: a reader sees the old complete file or the new complete one, never a torn one."""
import contextlib
import os
import os.path as osp
import tempfile


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path, mode='wb'):
    """Open a temporary file beside ``path``; on success fsync and rename it onto ``path``.

    The file gets the permissions a plain ``open`` would give it (0666 less the
    umask), not ``mkstemp``'s 0600. If the body raises (or the process dies),
    ``path`` keeps its previous content
    and the temporary file is removed (or, after a kill, left under a ``.tmp``
    name that no reader takes for the real file).

    Example::

        with atomic_write('labels/0001.png') as f:
            f.write(png_bytes)
    """
    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + osp.basename(path) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_torch_save(obj, path):
    """``torch.save`` through :func:`atomic_write`."""
    import torch
    with atomic_write(path, 'wb') as f:
        torch.save(obj, f)
