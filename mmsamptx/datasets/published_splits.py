"""The published semi-supervised split lists (UniMatch / UniMatch V2), fetched and checked.

The low-data subsets of SAM-PTx and CLIP-Guided SAM ("ADE20K 1/64", "COCO
1/512", "PASCAL 92") are the ``labeled.txt`` lists published with UniMatch
(COCO, PASCAL VOC; github.com/LiheYoung/UniMatch) and UniMatch V2 (ADE20K;
github.com/LiheYoung/UniMatch-V2). Each line names an image and its label,
relative to the dataset root::

    images/training/ADE_train_00001609.jpg annotations/training/ADE_train_00001609.png

:func:`published_split` returns the local copy of a list by name
(``'ade20k/1_64'``, ``'coco/val'``, ...): it is looked for in a cache folder,
downloaded from the public raw URL on first use, and its sha256 is checked
every time, so a truncated or edited list is never used silently.

Where the files go, in order of precedence:

- the ``root`` argument;
- the ``MMSAMPTX_SPLITS_DIR`` environment variable;
- ``~/.cache/mmsamptx/splits``.

A name's file is ``<root>/<path>``, the path being the one after the
repositories' ``splits/`` folder (``ade20k/1_64/labeled.txt``). The download
base can be replaced (``base_url`` argument or ``MMSAMPTX_SPLITS_URL``), e.g.
by a mirror serving the same paths.
"""
import hashlib
import os
import os.path as osp
import urllib.error
import urllib.request
from typing import Dict, List, NamedTuple, Optional

from mmsamptx.utils import atomic_write

#: Raw ``splits/`` folders of the two repositories, branch main.
UNIMATCH_BASE = 'https://raw.githubusercontent.com/LiheYoung/UniMatch/main/splits'
UNIMATCH_V2_BASE = ('https://raw.githubusercontent.com/LiheYoung/UniMatch-V2/'
                    'main/splits')
DEFAULT_CACHE_DIR = osp.join('~', '.cache', 'mmsamptx', 'splits')
ENV_DIR = 'MMSAMPTX_SPLITS_DIR'
ENV_URL = 'MMSAMPTX_SPLITS_URL'


class PublishedSplit(NamedTuple):
    """One published list: where it lives, its sha256 and its line count."""
    path: str  # after the repository's ``splits/`` folder
    base: str  # the repository's raw ``splits/`` URL
    sha256: str
    lines: int  # non-empty lines (some files lack a final newline)


# ADE20K lists exist in UniMatch V2 only; COCO and PASCAL lists are
# byte-identical in V1 and V2 and are taken from V1. Hashes and counts are
# those of UniMatch commit 0324f3dd and UniMatch V2 commit f6afb4df.
PUBLISHED_SPLITS: Dict[str, PublishedSplit] = {
    'ade20k/1_64': PublishedSplit('ade20k/1_64/labeled.txt', UNIMATCH_V2_BASE,
                   '78f423b10adcb3670e048c02bf43707430ede157036c195b61912dc4bf25602a', 316),
    'ade20k/1_32': PublishedSplit('ade20k/1_32/labeled.txt', UNIMATCH_V2_BASE,
                   'b5f4e344f278d04dc4b0f3a1ebb349844d5ad8cbab61922275d43211ef1526ad', 631),
    'ade20k/1_16': PublishedSplit('ade20k/1_16/labeled.txt', UNIMATCH_V2_BASE,
                   'a716e48c18e404ad00258e111290d09c59fd90b6b564283a1e86741a083dda82', 1263),
    'ade20k/1_8': PublishedSplit('ade20k/1_8/labeled.txt', UNIMATCH_V2_BASE,
                   '311d88abc340a887a4e1f87b49e87ba8b4d050cb2ee3a2dfcc01158c2d29f7f0', 2526),
    'ade20k/1_4': PublishedSplit('ade20k/1_4/labeled.txt', UNIMATCH_V2_BASE,
                   'e657087c6b05ecc7a264820212c21918e280c51b060b831d5bc138114099b1b5', 5052),
    'ade20k/val': PublishedSplit('ade20k/val.txt', UNIMATCH_V2_BASE,
                   '8a733f0c20d8f6cd6450b775a2f9e0d9d328af6d8a3aaf50db55d964d18d584c', 2000),
    'coco/1_512': PublishedSplit('coco/1_512/labeled.txt', UNIMATCH_BASE,
                   'bd0ff85bf2d35b4641d08c2201257ad5b5f02f85ea0da457f44f0b97c4caeb37', 232),
    'coco/1_256': PublishedSplit('coco/1_256/labeled.txt', UNIMATCH_BASE,
                   '4cdf41b9d3b3afc3734057a605015860501199ed3680370ccb2c677fc159b127', 463),
    'coco/1_128': PublishedSplit('coco/1_128/labeled.txt', UNIMATCH_BASE,
                   '06067c0fb879b8e6ab8f4bdab3dfa641e8e4da2990200fa156daa33670329d79', 925),
    'coco/1_64': PublishedSplit('coco/1_64/labeled.txt', UNIMATCH_BASE,
                   '622b84ccbb5dcba32f4f5bb4ffaf1a9cf3e3f1f460b55dc02605fd099ebf1337', 1849),
    'coco/1_32': PublishedSplit('coco/1_32/labeled.txt', UNIMATCH_BASE,
                   '781b5990914f7422ee9e1f6325a914f289e077621b77b9cd066c2d01d33a939e', 3697),
    'coco/val': PublishedSplit('coco/val.txt', UNIMATCH_BASE,
                   '5a296a8b638114611e81c3b2257ec1720c8c16300f29ac24fcd8ddf08c9eb6d8', 5000),
    'pascal/92': PublishedSplit('pascal/92/labeled.txt', UNIMATCH_BASE,
                   '8a02aa6a1253178b105bd25b36f0a27daeedf6b3959f399aa47d24783f3a8306', 92),
    'pascal/183': PublishedSplit('pascal/183/labeled.txt', UNIMATCH_BASE,
                   'de3f4680391cb15324402dae17ac0919933d0d9004c11a641c924f3f67147f9f', 183),
    'pascal/366': PublishedSplit('pascal/366/labeled.txt', UNIMATCH_BASE,
                   '74f6bd1e459a8b46fc204529d70b603769f8a45aef4553df8a5c04b5698e77b7', 366),
    'pascal/732': PublishedSplit('pascal/732/labeled.txt', UNIMATCH_BASE,
                   '02c8ec5b62e27364f5bc91eb95bccf54debaa721e9d31c50c07507aea258fd0f', 732),
    'pascal/1464': PublishedSplit('pascal/1464/labeled.txt', UNIMATCH_BASE,
                   'b20486876df309c57c8230e957b2957fff5392ff5cb11f225e8453ed6c50ba3e', 1464),
    'pascal/val': PublishedSplit('pascal/val.txt', UNIMATCH_BASE,
                   'df002e3a730c57678f63aa3e46a4c827a4066f1dc1814e24d0e8b215075e0c6c', 1449),
}


def list_published_splits(dataset: Optional[str] = None) -> List[str]:
    """Return the valid names, optionally only those of ``dataset`` ('coco')."""
    names = list(PUBLISHED_SPLITS)
    if dataset is not None:
        names = [n for n in names if n.split('/')[0] == dataset]
    return names


def resolve_published_name(name: str, dataset: Optional[str] = None) -> str:
    """Return the table name of ``name``; an unknown name lists the valid ones.

    With ``dataset`` ('ade20k', 'coco', 'pascal') the name must belong to it;
    a bare split (``'1_64'``, ``'val'``) is then read as ``'<dataset>/<split>'``.
    """
    if not isinstance(name, str):
        raise TypeError(f'a published split name is a string, got {name!r}')
    full = name.strip().strip('/')
    if dataset is not None and '/' not in full:
        full = f'{dataset}/{full}'
    valid = list_published_splits(dataset)
    if full not in valid:
        what = f'{dataset} split' if dataset else 'split'
        raise ValueError(f'unknown published {what} {name!r}; valid names: '
                         + ', '.join(valid))
    return full


def get_published_split(name: str) -> PublishedSplit:
    """Return the table entry of ``name`` (see :func:`resolve_published_name`)."""
    return PUBLISHED_SPLITS[resolve_published_name(name)]


def splits_dir(root: Optional[str] = None) -> str:
    """The cache folder: ``root``, else ``$MMSAMPTX_SPLITS_DIR``, else ``~/.cache/mmsamptx/splits``."""
    folder = root or os.environ.get(ENV_DIR) or DEFAULT_CACHE_DIR
    return osp.abspath(osp.expanduser(os.fspath(folder)))


def published_split_url(name: str, base_url: Optional[str] = None) -> str:
    """The URL ``name`` is downloaded from (``base_url`` / ``$MMSAMPTX_SPLITS_URL`` replaces the base)."""
    entry = get_published_split(name)
    base = base_url or os.environ.get(ENV_URL) or entry.base
    return base.rstrip('/') + '/' + entry.path


def sha256_of(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def count_lines(data: bytes) -> int:
    """Number of non-empty lines (a missing final newline does not matter)."""
    return sum(1 for line in data.decode('utf-8').splitlines() if line.strip())


def check_published_split(path: str, name: str) -> str:
    """Check that the file at ``path`` is the published list ``name``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file, the expected and the actual sha256 for any other content
    (a truncated download, an edited line). Returns ``path``.
    """
    entry = get_published_split(name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file {path} does not exist')
    with open(path, 'rb') as f:
        actual = sha256_of(f.read())
    if actual != entry.sha256:
        raise ValueError(
            f'split file {path} is not the published {name!r} list: sha256 '
            f'{actual}, expected {entry.sha256}; delete it to download it '
            'again')
    return path


def _download(url: str, dest: str, name: str, timeout: float) -> None:
    """Fetch ``url``, check its sha256 and write it to ``dest`` atomically."""
    entry = get_published_split(name)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, 'reason', None) or e
        raise RuntimeError(
            f'could not download the published split {name!r} from {url} '
            f'({reason}). Without network access, download {url} on another '
            f'machine and place it at {dest}') from e
    actual = sha256_of(data)
    if actual != entry.sha256:
        raise ValueError(
            f'downloaded split {name!r} from {url} has sha256 {actual}, '
            f'expected {entry.sha256}; it was not written to {dest}')
    # Temp file + rename: a reader never sees a half-written list.
    with atomic_write(dest, 'wb') as f:
        f.write(data)


def published_split(name: str,
                    root: Optional[str] = None,
                    base_url: Optional[str] = None,
                    download: bool = True,
                    timeout: float = 30.0) -> str:
    """Return the path of the verified local copy of the published list ``name``.

    Args:
        name (str): e.g. ``'ade20k/1_64'``, ``'coco/1_512'``, ``'pascal/92'``,
            ``'coco/val'``; see :func:`list_published_splits`.
        root (str, optional): Cache folder; see :func:`splits_dir`.
        base_url (str, optional): Replaces the repositories' raw ``splits/``
            URL (also ``$MMSAMPTX_SPLITS_URL``).
        download (bool): Fetch a missing file. Defaults to True.
        timeout (float): Seconds before a download gives up.

    Raises:
        ValueError: unknown name (the valid names are listed), or a file
            whose sha256 differs from the table (file, expected and actual
            hash are named).
        RuntimeError: the download failed; the message names the URL and the
            path to place the file at by hand.
    """
    entry = get_published_split(name)
    dest = osp.join(splits_dir(root), *entry.path.split('/'))
    if not osp.isfile(dest):
        url = published_split_url(name, base_url)
        if not download:
            raise FileNotFoundError(
                f'published split {name!r} is not at {dest}; download {url} '
                'and place it there')
        _download(url, dest, name, timeout)
    return check_published_split(dest, name)


def published_split_path(dataset: str, name: str,
                         root: Optional[str] = None,
                         ann_file: Optional[str] = None) -> str:
    """Resolve a dataset's ``published_split`` argument to its local file.

    ``name`` must belong to ``dataset`` (a bare ``'1_64'`` is read as
    ``'<dataset>/1_64'``); giving ``ann_file`` as well is refused, since only
    one of the two can say which images are used.
    """
    if ann_file:
        raise ValueError(
            f'give either published_split ({name!r}) or ann_file '
            f'({ann_file!r}), not both')
    return published_split(resolve_published_name(name, dataset), root)


def fetch_published_split(name: str,
                          dataset: Optional[str] = None,
                          data_root: Optional[str] = None,
                          out: Optional[str] = None,
                          root: Optional[str] = None,
                          base_url: Optional[str] = None) -> dict:
    """Download/verify a published list, optionally copy it and check a dataset against it.

    The work behind the converters' ``published`` commands. ``out`` (a file
    path) receives a copy of the verified list. With ``data_root`` every image
    and label the list names must exist under it, else ``FileNotFoundError``
    says how many are missing and names the first. Returns a dict with
    ``name``, ``path`` (the cached file), ``lines``, ``url`` and ``copy``.
    """
    from .utils import missing_split_files
    full = resolve_published_name(name, dataset)
    path = published_split(full, root, base_url)
    copy = None
    if out:
        with open(path, 'rb') as f:
            data = f.read()
        with atomic_write(out, 'wb') as f:
            f.write(data)
        copy = check_published_split(out, full)
    if data_root is not None:
        missing = missing_split_files(path, data_root)
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} file(s) named by the published split '
                f'{full!r} ({path}) are missing under {data_root}, first: '
                f'{missing[0]}')
    return dict(name=full, path=path, lines=PUBLISHED_SPLITS[full].lines,
                url=published_split_url(full, base_url), copy=copy)


__all__ = [
    'PUBLISHED_SPLITS', 'PublishedSplit', 'list_published_splits',
    'get_published_split', 'resolve_published_name', 'published_split', 'published_split_url',
    'check_published_split', 'published_split_path', 'fetch_published_split', 'splits_dir', 'count_lines', 'sha256_of'
]
