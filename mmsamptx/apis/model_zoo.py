"""Model-zoo names: a config file's stem (``samptx_ade20k_1-64``) stands for the config itself."""
import glob
import os.path as osp
from typing import Dict, List

from .errors import InputError

#: The repository's ``configs/`` folder (beside the package in a source checkout or editable install).
CONFIG_ROOT = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'configs')


def _index() -> Dict[str, List[str]]:
    """Stem -> config paths, every config outside a ``_base_`` folder."""
    index: Dict[str, List[str]] = {}
    for path in sorted(glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)):
        rel = osp.relpath(path, CONFIG_ROOT)
        if '_base_' in rel.split(osp.sep) or osp.basename(path).startswith('_'):
            continue
        index.setdefault(osp.splitext(osp.basename(path))[0], []).append(path)
    return index


def list_models() -> List[str]:
    """Every model-zoo name, sorted; a name shared by two folders is listed as ``folder/stem``."""
    names = []
    for stem, paths in _index().items():
        if len(paths) == 1:
            names.append(stem)
        else:
            names += [osp.splitext(osp.relpath(p, CONFIG_ROOT))[0] for p in paths]
    return sorted(names)


def resolve_config(name: str) -> str:
    """The config file of ``name``: an existing path, or a model-zoo name (a config's stem, or
    its path under ``configs/`` without ``.py``). An unknown name lists the close ones."""
    name = str(name)
    if osp.isfile(name):
        return name
    if name.endswith('.py') or osp.sep in name and osp.isfile(osp.join(CONFIG_ROOT, name + '.py')):
        rel = name if name.endswith('.py') else name + '.py'
        if osp.isfile(osp.join(CONFIG_ROOT, rel)):
            return osp.join(CONFIG_ROOT, rel)
        if name.endswith('.py'):
            raise InputError(f'config file not found: {name}')
    paths = _index().get(name, [])
    if len(paths) == 1:
        return paths[0]
    if len(paths) > 1:
        choices = ', '.join(osp.splitext(osp.relpath(p, CONFIG_ROOT))[0] for p in paths)
        raise InputError(f'model name {name!r} is ambiguous: say which of {choices}')
    names = list_models()
    import difflib
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f'; close: {", ".join(close)}' if close else ''
    raise InputError(f'unknown model {name!r}: neither a config file nor one of the {len(names)} '
                     f'model-zoo names (mmsamptx.apis.list_models()){hint}')
