"""PTSAM's binary datasets: the converted layout, its official splits and N-shot lists.

Every PTSAM dataset (OrganoidBasic, EMParticles, LIVECell, Kvasir-SEG) is
turned by its converter (``tools/dataset_converters/<dataset>.py convert``)
into one layout, split by the source's official split::

    <root>/<split>/images/<id><img_suffix>   the official image, copied as is
    <root>/<split>/masks/<id>.png            foreground 255, background 0
    <root>/splits/<split>_<N>shot_seed<S>.txt  N ids of <split>, one per line

:class:`PTSAMBinaryDataset` reads one split of it, or the N-shot list of a
split. The helpers here (copying a pair, downloading a file, the shot lists,
verification) are shared by the four dataset modules and their converters, so
a converter and the dataset that reads its output agree on every rule.
"""
import hashlib
import os
import os.path as osp
import zipfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from mmsamptx.utils import atomic_write

from .few_shot_binary import folder_pairs
from .utils import (data_list_from_split, read_image_checked, read_split_file,
                    seeded_subset, verify_pairs, write_png, write_split_file)

MASK_SUFFIX = '.png'


def split_dirs(root: str, split: str) -> Tuple[str, str]:
    """``(<root>/<split>/images, <root>/<split>/masks)``."""
    return osp.join(root, split, 'images'), osp.join(root, split, 'masks')


def shots_file(root: str, split: str, num_shots: int, seed: int) -> str:
    """Path of the N-shot list of ``split``:
    ``<root>/splits/<split>_<N>shot_seed<S>.txt``."""
    return osp.join(root, 'splits', f'{split}_{num_shots}shot_seed{seed}.txt')


def split_ids(root: str, split: str, img_suffix: str) -> List[str]:
    """Sorted ids of a converted split (image and mask matched by id)."""
    img_dir, mask_dir = split_dirs(root, split)
    if not osp.isdir(img_dir):
        raise FileNotFoundError(
            f'split {split!r} of {root} has no folder {img_dir}: convert the '
            'dataset first (tools/dataset_converters/<dataset>.py convert)')
    return [s for s, _, _ in folder_pairs(img_dir, mask_dir, img_suffix,
                                          MASK_SUFFIX)]


def make_shots(root: str, split: str, num_shots: int, seed: int,
               img_suffix: str, out: Optional[str] = None) -> List[str]:
    """Write the seeded N-shot list of ``split`` and return its ids.

    The ids are ``seeded_subset(sorted ids, num_shots, seed)``: the sorted ids
    permuted by ``numpy.random.RandomState(seed)``, the first N kept, written
    sorted. The paper's own rule could not be read (docs/ptsam.md); this one
    is reproducible on every machine and the same N-shot lists nest for no N.
    ``num_shots`` larger than the split raises ``ValueError`` naming both.
    """
    ids = split_ids(root, split, img_suffix)
    if num_shots < 1:
        raise ValueError(f'num_shots must be >= 1, got {num_shots}')
    if num_shots > len(ids):
        raise ValueError(
            f'num_shots={num_shots} is larger than split {split!r} of {root} '
            f'({len(ids)} images)')
    shots = seeded_subset(ids, num_shots, seed)
    write_split_file(out or shots_file(root, split, num_shots, seed), shots)
    return shots


def copy_file(src: str, dst: str, what: str = 'image') -> None:
    """Copy ``src`` to ``dst`` atomically after checking it decodes fully."""
    read_image_checked(src, what)
    with open(src, 'rb') as f:
        data = f.read()
    with atomic_write(dst, 'wb') as f:
        f.write(data)


def write_pair(root: str, split: str, sid: str, img_src: str,
               mask: np.ndarray, overwrite: bool = False) -> None:
    """Copy an official image and write its 0/255 mask into the layout.

    ``mask``: ``(H, W)`` bool or integer array, nonzero = foreground. Existing
    outputs are kept unless ``overwrite``.
    """
    img_dir, mask_dir = split_dirs(root, split)
    ext = osp.splitext(img_src)[1]
    img_dst = osp.join(img_dir, sid + ext)
    mask_dst = osp.join(mask_dir, sid + MASK_SUFFIX)
    if overwrite or not osp.isfile(img_dst):
        copy_file(img_src, img_dst)
    if overwrite or not osp.isfile(mask_dst):
        write_png(mask_dst, np.where(np.asarray(mask) > 0, 255,
                                     0).astype(np.uint8))


def image_hw(path: str) -> Tuple[int, int]:
    """``(height, width)`` of an image file, read from its header."""
    from PIL import Image
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file {path} does not exist')
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except Exception as e:  # PIL raises OSError / SyntaxError / ValueError
        raise ValueError(f'image file {path} cannot be read: '
                         f'{type(e).__name__}: {e}') from e


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: str, sha256: Optional[str] = None,
                  timeout: float = 60.0) -> str:
    """Fetch ``url`` to ``dest`` (atomically, with a progress bar); check ``sha256``.

    A file already at ``dest`` is not downloaded again, only checked. Offline,
    ``RuntimeError`` names the URL and where to place the file by hand. A
    checksum mismatch names the file and both digests.
    """
    if not osp.isfile(dest):
        import urllib.request

        from tqdm import tqdm
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r, \
                    atomic_write(dest, 'wb') as f:
                total = int(r.headers.get('Content-Length') or 0) or None
                with tqdm(total=total, unit='B', unit_scale=True,
                          desc=osp.basename(dest)) as bar:
                    for chunk in iter(lambda: r.read(1 << 20), b''):
                        f.write(chunk)
                        bar.update(len(chunk))
        except OSError as e:
            raise RuntimeError(
                f'could not download {url} ({getattr(e, "reason", e)}); on a '
                f'machine with internet download it, place it at {dest} and '
                'run this command again') from e
    if sha256:
        got = sha256_file(dest)
        if got != sha256:
            raise ValueError(f'{dest} has sha256 {got}, expected {sha256}: '
                             'delete it and download it again')
    return dest


def extract_zip(archive: str, out_dir: str) -> None:
    """Unpack ``archive`` into ``out_dir``, refusing members outside it."""
    from tqdm import tqdm
    base = osp.realpath(out_dir)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for m in members:
                target = osp.realpath(osp.join(base, m.filename))
                if target != base and not target.startswith(base + os.sep):
                    raise ValueError(f'{archive}: member {m.filename!r} would '
                                     f'be written outside {out_dir}')
            for m in tqdm(members, desc=f'unzip {osp.basename(archive)}'):
                zf.extract(m, base)
    except zipfile.BadZipFile as e:
        raise RuntimeError(f'{archive} is not a valid zip archive ({e}); '
                           'delete it and download it again') from e


def verify_split(root: str, split: str, img_suffix: str,
                 expected: Optional[int] = None, workers: int = 0) -> dict:
    """Check a converted split: ids match, masks are single-channel 0/255
    (0/1 also reads right) of their image's size; return counts and
    histograms (``verify_pairs``).

    ``expected`` (the number of images the source publishes for the split)
    that differs from the count found raises ``ValueError`` naming both.
    """
    img_dir, mask_dir = split_dirs(root, split)
    ids = split_ids(root, split, img_suffix)
    pairs = [(osp.join(img_dir, i + img_suffix),
              osp.join(mask_dir, i + MASK_SUFFIX)) for i in ids]
    rep = verify_pairs(pairs, 2, ignore_index=-1, label_map={255: 1},
                       background_index=0, workers=workers,
                       desc=f'verify {split}')
    if expected is not None and rep['num_images'] != expected:
        raise ValueError(f'split {split!r} of {root} has {rep["num_images"]} '
                         f'image/mask pairs, expected {expected}')
    rep['split'] = split
    return rep


@DATASETS.register_module()
class PTSAMBinaryDataset(BaseSegDataset):
    """One split (or its N-shot list) of a converted PTSAM binary dataset.

    Reads ``<data_root>/<split>/images/<id><img_suffix>`` with
    ``<data_root>/<split>/masks/<id>.png`` (0/255; ``label_map={255: 1}``
    gives 0 = background, 1 = the foreground class). With ``num_shots`` it
    reads only the ids of ``<data_root>/splits/<split>_<N>shot_seed<S>.txt``
    (written by ``tools/dataset_converters/ptsam_few_shot.py``); a missing
    list, or a listed id without its files, raises naming the path.

    Subclasses fix ``SPLITS`` (the source's official splits), ``TEST_SPLIT``,
    ``IMG_SUFFIX`` and the class name.

    Args:
        split (str): One of ``SPLITS``. Defaults to 'train'.
        num_shots (int, optional): Read the N-shot list of ``split``.
        seed (int): Which N-shot list. Defaults to 0.
        shots_file (str, optional): Another id list of ``split`` (relative to
            ``data_root`` or absolute); overrides ``num_shots``.
    """

    METAINFO = dict(classes=('background', 'foreground'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    SPLITS: Sequence[str] = ('train', 'test')
    TEST_SPLIT = 'test'
    IMG_SUFFIX = '.png'

    def __init__(self,
                 split: str = 'train',
                 num_shots: Optional[int] = None,
                 seed: int = 0,
                 shots_file: Optional[str] = None,
                 img_suffix: Optional[str] = None,
                 **kwargs) -> None:
        name = type(self).__name__
        if split not in self.SPLITS:
            raise ValueError(f'{name} split must be one of {tuple(self.SPLITS)}'
                             f', got {split!r}')
        if num_shots is not None and num_shots < 1:
            raise ValueError(f'{name} num_shots must be >= 1, got {num_shots}')
        if 'data_prefix' in kwargs:
            raise ValueError(f'{name} sets data_prefix from split; got '
                             f'data_prefix={kwargs["data_prefix"]!r}')
        self.split = split
        self.num_shots = num_shots
        self.seed = seed
        self.shots_file = shots_file
        super().__init__(
            img_suffix=img_suffix or self.IMG_SUFFIX,
            seg_map_suffix=MASK_SUFFIX,
            data_prefix=dict(img_path=osp.join(split, 'images'),
                             seg_map_path=osp.join(split, 'masks')),
            reduce_zero_label=False,
            **kwargs)

    def _ids_file(self) -> Optional[str]:
        root = self.data_root or ''
        if self.shots_file is not None:
            return self.shots_file if osp.isabs(self.shots_file) else \
                osp.join(root, self.shots_file)
        if self.num_shots is not None:
            return shots_file(root, self.split, self.num_shots, self.seed)
        return None

    def load_data_list(self) -> List[dict]:
        """The split's pairs sorted by id, or those of the N-shot list."""
        root = self.data_root or ''
        self.label_map = {255: 1}
        ids_file = self._ids_file()
        if ids_file is not None:
            if not osp.isfile(ids_file):
                raise FileNotFoundError(
                    f'N-shot list {ids_file} does not exist; write it with '
                    f'tools/dataset_converters/ptsam_few_shot.py {root} '
                    f'--num-shots {self.num_shots} --seed {self.seed}')
            data_list = data_list_from_split(self, ids_file)
            for info, sid in zip(data_list, read_split_file(ids_file)):
                info['sample_id'] = sid
        else:
            ids = split_ids(root, self.split, self.img_suffix)
            if not ids:
                raise ValueError(f'split {self.split!r} of {root} holds no '
                                 'image')
            img_dir, mask_dir = split_dirs(root, self.split)
            data_list = [
                dict(img_path=osp.join(img_dir, i + self.img_suffix),
                     seg_map_path=osp.join(mask_dir, i + MASK_SUFFIX),
                     label_map=self.label_map, reduce_zero_label=False,
                     seg_fields=[], sample_id=i) for i in ids
            ]
        for info in data_list:
            info['class_name'] = self.METAINFO['classes'][1]
        return data_list


__all__ = [
    'PTSAMBinaryDataset', 'split_dirs', 'shots_file', 'split_ids',
    'make_shots', 'write_pair', 'copy_file', 'image_hw', 'download_file',
    'extract_zip', 'verify_split', 'sha256_file'
]
