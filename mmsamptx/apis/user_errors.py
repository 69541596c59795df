"""What the tools share to turn user errors into one line ``error: ...`` and exit status 2."""
import os.path as osp
import sys
from typing import Iterable, Optional

from .errors import InputError

__all__ = ['USER_ERRORS', 'report_user_error', 'check_data_roots', 'dataset_cfgs']


def _user_error_types() -> tuple:
    from mmsamptx.engine import ConfigNotFoundError, UnknownTypeError
    # FileNotFoundError: a dataset names the folder or split file it did not find
    return (InputError, ConfigNotFoundError, UnknownTypeError, FileNotFoundError)


USER_ERRORS = _user_error_types()


def report_user_error(error: BaseException, stream=None) -> int:
    """Print ``error: <one line>`` to stderr; returns the tools' exit status for it, 2."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    if isinstance(error, FileNotFoundError) and error.filename and str(error.filename) not in text:
        text = f'{text}: {error.filename}'
    print(f'error: {" ".join(str(text).split())}', file=stream or sys.stderr)
    return 2


def dataset_cfgs(cfg, loaders: Iterable[str]):
    """(where, dataset config) of each named dataloader's dataset and the datasets it wraps."""
    for loader in loaders:
        ds = (cfg.get(loader) or {}).get('dataset')
        where = f'{loader}.dataset'
        while isinstance(ds, dict):
            yield where, ds
            for i, inner in enumerate(ds.get('datasets') or []):  # ConcatDataset
                if isinstance(inner, dict):
                    yield f'{where}.datasets[{i}]', inner
            ds, where = ds.get('dataset'), where + '.dataset'


def check_data_roots(cfg, loaders: Iterable[str], config_path: Optional[str] = None) -> None:
    """Raise :class:`InputError` naming the first dataset whose ``data_root`` is not a folder."""
    for where, ds in dataset_cfgs(cfg, loaders):
        root = ds.get('data_root')
        if isinstance(root, str) and root and '://' not in root and not osp.isdir(root):
            origin = f' of {config_path}' if config_path else ''
            raise InputError(f'data root not found: {root} ({where}.data_root{origin}); prepare the '
                             'dataset as docs/datasets.md says, or set it with --cfg-options '
                             f'{where}.data_root=DIR')
