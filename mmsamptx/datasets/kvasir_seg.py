"""Kvasir-SEG: colonoscopy polyps, PTSAM's medical dataset.

Source: Jha et al., "Kvasir-SEG: A Segmented Polyp Dataset", MMM 2020;
datasets.simula.no/kvasir-seg (use under the terms stated there). The
archive unpacks to::

    Kvasir-SEG/images/<id>.jpg   1,000 polyp images, 332x487 to 1920x1072
    Kvasir-SEG/masks/<id>.jpg    same size, white polyp on black (JPEG, so
                                 edges carry grey values)

The release itself has no split. Its authors published an 880 / 120
train / val split "for fair model comparison" (github.com/DebeshJha/
2020-MediaEval-Medico-polyp-segmentation, ``kvasir-seg-train-val/
{train,val}.txt``, one id per line); that is the split used here. The
converter thresholds each mask at 128 (grey mean of the channels).
"""
import os.path as osp
from typing import Dict

import numpy as np
from mmseg.registry import DATASETS

from .ptsam_binary import (PTSAMBinaryDataset, download_file, extract_zip,
                           image_hw, write_pair)
from .utils import read_image_checked, read_split_file

KVASIR_URL = 'https://datasets.simula.no/downloads/kvasir-seg.zip'
KVASIR_SPLIT_COMMIT = 'd594c08b7f3a1cc40ef878284b5fc29de822bf18'
KVASIR_SPLIT_URL = (
    'https://raw.githubusercontent.com/DebeshJha/'
    f'2020-MediaEval-Medico-polyp-segmentation/{KVASIR_SPLIT_COMMIT}/'
    'kvasir-seg-train-val/{}.txt')
# sha256 of the split lists at that commit (read from the repository).
KVASIR_SPLIT_SHA256 = dict(
    train='49992c7c6c80abf02032050d4ae754236da3ba1041f609659ad0043ff6d1795c',
    val='d9b48bd3d980324edb39df97764fdbb5489b2583f088fb49c659b76f6d20876b')
KVASIR_SPLITS = ('train', 'val')
KVASIR_EXPECTED = dict(train=880, val=120)
KVASIR_THRESHOLD = 128


def find_kvasir_root(path: str) -> str:
    """The folder holding ``images/`` and ``masks/`` (the path or its
    ``Kvasir-SEG`` subfolder)."""
    for cand in (path, osp.join(path, 'Kvasir-SEG')):
        if osp.isdir(osp.join(cand, 'images')) and \
                osp.isdir(osp.join(cand, 'masks')):
            return cand
    raise FileNotFoundError(
        f'no Kvasir-SEG folder at {path}: expected {path}/Kvasir-SEG/'
        '{images,masks} (unpacked kvasir-seg.zip)')


def kvasir_split_file(path: str, split: str, split_dir: str = None) -> str:
    """``<split>.txt`` from ``split_dir``, the raw folder or its parent."""
    for folder in ([split_dir] if split_dir else []) + \
            [path, osp.join(path, 'Kvasir-SEG'), osp.dirname(
                osp.normpath(path))]:
        cand = osp.join(folder, f'{split}.txt')
        if osp.isfile(cand):
            return cand
    raise FileNotFoundError(
        f'Kvasir-SEG split list {split}.txt not found in '
        f'{split_dir or path}: download it from '
        f'{KVASIR_SPLIT_URL.format(split)} (tools/dataset_converters/'
        'kvasir_seg.py download does) and place it there')


def kvasir_mask(mask_path: str, img_path: str) -> np.ndarray:
    """The thresholded mask, checked to have its image's size; ``(H, W)`` bool.

    A mask of another size than its image raises ``ValueError`` naming both
    files and sizes.
    """
    m = read_image_checked(mask_path, 'mask')
    h, w = image_hw(img_path)
    if m.shape[:2] != (h, w):
        raise ValueError(f'Kvasir-SEG mask {mask_path} is {m.shape[1]}x'
                         f'{m.shape[0]} but its image {img_path} is {w}x{h}')
    grey = m.astype(np.float32).mean(axis=-1) if m.ndim == 3 else m
    return grey >= KVASIR_THRESHOLD


def convert_kvasir(raw: str, out: str, split_dir: str = None,
                   overwrite: bool = False) -> Dict[str, int]:
    """Write the converted layout of the train / val lists; return counts."""
    from tqdm import tqdm
    root = find_kvasir_root(raw)
    counts = {}
    for split in KVASIR_SPLITS:
        lst = kvasir_split_file(raw, split, split_dir)
        ids = read_split_file(lst)  # one id per line
        for sid in tqdm(ids, desc=f'Kvasir-SEG {split}'):
            img = osp.join(root, 'images', sid + '.jpg')
            mask = osp.join(root, 'masks', sid + '.jpg')
            for what, p in (('image', img), ('mask', mask)):
                if not osp.isfile(p):
                    raise FileNotFoundError(f'{lst} lists {sid!r} but its '
                                            f'{what} {p} does not exist')
            write_pair(out, split, sid, img, kvasir_mask(mask, img), overwrite)
        counts[split] = len(ids)
    return counts


def download_kvasir(out_dir: str) -> str:
    """Fetch and unpack the archive and the sha256-checked split lists."""
    for split in KVASIR_SPLITS:
        download_file(KVASIR_SPLIT_URL.format(split),
                      osp.join(out_dir, f'{split}.txt'),
                      KVASIR_SPLIT_SHA256[split])
    try:
        return find_kvasir_root(out_dir)
    except FileNotFoundError:
        pass
    archive = download_file(KVASIR_URL, osp.join(out_dir, 'kvasir-seg.zip'))
    extract_zip(archive, out_dir)
    return find_kvasir_root(out_dir)


@DATASETS.register_module()
class KvasirSEGDataset(PTSAMBinaryDataset):
    """Kvasir-SEG after ``tools/dataset_converters/kvasir_seg.py convert``:
    splits ``train`` (880) / ``val`` (120, the test set), JPEG images,
    foreground = polyp. See :class:`PTSAMBinaryDataset`."""

    METAINFO = dict(classes=('background', 'polyp'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    SPLITS = KVASIR_SPLITS
    TEST_SPLIT = 'val'
    IMG_SUFFIX = '.jpg'


__all__ = [
    'KvasirSEGDataset', 'KVASIR_URL', 'KVASIR_SPLIT_URL', 'KVASIR_EXPECTED',
    'find_kvasir_root', 'kvasir_split_file', 'kvasir_mask', 'convert_kvasir',
    'download_kvasir'
]
