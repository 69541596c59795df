"""Official files by URL or local path: a URL is downloaded once into the torch hub cache.

The one place where SAM, BEiT-3 and EVF-SAM files (and the BEiT-3 tokenizer)
are fetched. Offline, the error names the URL and the destination to put the
file at; a local path that does not exist is named, with the official URL
when its file name is a known one.
"""
import os
import os.path as osp
from typing import Mapping, Optional
from urllib.parse import urlparse

import torch


def hub_path(url: str) -> str:
    """Where a file downloaded from ``url`` is kept: the torch hub cache's ``checkpoints``.

    Hugging Face files are kept per repository (``checkpoints/<owner>--<repo>/<file>``),
    since releases share file names such as ``pytorch_model.bin``; any other
    URL is kept under its file name.
    """
    parsed = urlparse(url)
    parts = parsed.path.strip('/').split('/')
    root = osp.join(torch.hub.get_dir(), 'checkpoints')
    if 'huggingface.co' in parsed.netloc and len(parts) >= 5 and parts[2] == 'resolve':
        return osp.join(root, f'{parts[0]}--{parts[1]}', *parts[4:])
    return osp.join(root, osp.basename(url))


def resolve_file(path_or_url: str, what: str,
                 known_urls: Optional[Mapping[str, str]] = None) -> str:
    """A local path for ``path_or_url`` (a path, or a URL downloaded once into :func:`hub_path`).

    Args:
        path_or_url: a local file or an ``http(s)://`` URL.
        what: what the file is, for the messages (e.g. ``'SAM checkpoint'``).
        known_urls: file name -> official URL, to point a missing local file
            at where it comes from.

    Raises:
        RuntimeError: the download failed (offline): names the URL and where
            to put the file.
        FileNotFoundError: a local path that does not exist.
    """
    path_or_url = os.fspath(path_or_url)
    if path_or_url.startswith(('http://', 'https://')):
        dst = hub_path(path_or_url)
        if not osp.isfile(dst):
            os.makedirs(osp.dirname(dst), exist_ok=True)
            try:
                # download_url_to_file writes a temporary file and renames it.
                torch.hub.download_url_to_file(path_or_url, dst, progress=True)
            except Exception as e:  # network errors come in many types
                raise RuntimeError(
                    f'could not download the {what} {path_or_url} ({type(e).__name__}: {e}); '
                    f'download it on a machine with internet and put it at {dst}, '
                    'or pass its local path') from e
        return dst
    if not osp.isfile(path_or_url):
        hint = ''
        url = (known_urls or {}).get(osp.basename(path_or_url))
        if url is not None:
            hint = (f' It is the official file {url}; download it there, or pass the URL to '
                    f'download it into {hub_path(url)}.')
        raise FileNotFoundError(f'{what} not found: {path_or_url!r}.{hint}')
    return path_or_url
