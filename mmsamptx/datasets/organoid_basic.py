"""OrganoidBasic (OrgaSegment): intestinal organoids in bright-field images, PTSAM's first dataset.

Source: Lefferts et al., "OrgaSegment", Communications Biology 2024
(doi:10.1038/s42003-024-05966-4); Zenodo record 10278229, file
``OrganoidBasic_v20211206.zip``. It unpacks to::

    OrganoidBasic_v20211206/{train,val,eval}/<stem>_img.jpg
    OrganoidBasic_v20211206/{train,val,eval}/<stem>_masks_organoid.png

The three folders are the official split; a mask is an instance label map
(0 = background, one value per organoid). The converter writes the union of
the instances as the foreground.
"""
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from mmseg.registry import DATASETS

from .ptsam_binary import (PTSAMBinaryDataset, download_file, extract_zip,
                           image_hw, write_pair)
from .utils import list_files, read_image_checked

ORGANOID_URL = ('https://zenodo.org/records/10278229/files/'
                'OrganoidBasic_v20211206.zip')
# sha256 of the archive as recorded by torch_em's OrgaSegment loader
# (computational-cell-analytics/torch-em); Zenodo itself lists an md5.
ORGANOID_SHA256 = \
    'd067124d734108e46e18f65daaf17c89cb0a40bdacc6f6031815a6839e472798'
ORGANOID_ARCHIVE = 'OrganoidBasic_v20211206.zip'
ORGANOID_SUBDIR = 'OrganoidBasic_v20211206'
ORGANOID_SPLITS = ('train', 'val', 'eval')
IMG_TAG, MASK_TAG = '_img.jpg', '_masks_organoid.png'
# Image counts per split: not published in a source readable here; verify
# prints them.
ORGANOID_EXPECTED: Dict[str, int] = {}


def find_organoid_root(path: str) -> str:
    """The folder holding ``train/``, ``val/``, ``eval/`` (the path or its
    ``OrganoidBasic_v20211206`` subfolder)."""
    for cand in (path, osp.join(path, ORGANOID_SUBDIR)):
        if all(osp.isdir(osp.join(cand, s)) for s in ORGANOID_SPLITS):
            return cand
    raise FileNotFoundError(
        f'no OrganoidBasic folder at {path}: expected {path}/'
        f'{ORGANOID_SUBDIR}/{{train,val,eval}} (unpacked {ORGANOID_ARCHIVE})')


def organoid_pairs(raw_root: str, split: str) -> List[Tuple[str, str, str]]:
    """``(stem, image, mask)`` of one official split, sorted by stem.

    An image without its mask (or a mask without its image) raises
    ``ValueError`` naming the stems.
    """
    folder = osp.join(raw_root, split)
    imgs = {n[:-len(IMG_TAG)] for n in list_files(folder, IMG_TAG)}
    masks = {n[:-len(MASK_TAG)] for n in list_files(folder, MASK_TAG)}
    if imgs != masks:
        raise ValueError(
            f'OrganoidBasic {folder}: images without mask '
            f'{sorted(imgs - masks)[:10]}, masks without image '
            f'{sorted(masks - imgs)[:10]}')
    return [(s, osp.join(folder, s + IMG_TAG), osp.join(folder, s + MASK_TAG))
            for s in sorted(imgs)]


def instance_union(mask_path: str, img_hw: Tuple[int, int]) -> np.ndarray:
    """Foreground of an instance label map (any nonzero value), checked to
    have its image's size; ``(H, W)`` bool."""
    m = read_image_checked(mask_path, 'mask')
    fg = (m > 0).any(axis=-1) if m.ndim == 3 else m > 0
    if fg.shape != tuple(img_hw):
        raise ValueError(f'mask {mask_path} is {fg.shape[1]}x{fg.shape[0]} '
                         f'(WxH) but its image is {img_hw[1]}x{img_hw[0]}')
    return fg


def convert_organoid_basic(raw: str, out: str,
                           overwrite: bool = False) -> Dict[str, int]:
    """Write the converted layout of every official split; return counts."""
    from tqdm import tqdm
    root = find_organoid_root(raw)
    counts = {}
    for split in ORGANOID_SPLITS:
        pairs = organoid_pairs(root, split)
        for sid, img, mask in tqdm(pairs, desc=f'OrganoidBasic {split}'):
            write_pair(out, split, sid, img,
                       instance_union(mask, image_hw(img)), overwrite)
        counts[split] = len(pairs)
    return counts


def download_organoid_basic(out_dir: str) -> str:
    """Fetch (sha256-checked) and unpack the Zenodo archive; return the root."""
    try:
        return find_organoid_root(out_dir)
    except FileNotFoundError:
        pass
    archive = download_file(ORGANOID_URL, osp.join(out_dir, ORGANOID_ARCHIVE),
                            ORGANOID_SHA256)
    extract_zip(archive, out_dir)
    return find_organoid_root(out_dir)


@DATASETS.register_module()
class OrganoidBasicDataset(PTSAMBinaryDataset):
    """OrganoidBasic after ``tools/dataset_converters/organoid_basic.py
    convert``: splits ``train`` / ``val`` / ``eval`` (the test set), JPEG
    images, foreground = organoid. See :class:`PTSAMBinaryDataset`."""

    METAINFO = dict(classes=('background', 'organoid'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    SPLITS = ORGANOID_SPLITS
    TEST_SPLIT = 'eval'
    IMG_SUFFIX = '.jpg'


__all__ = [
    'OrganoidBasicDataset', 'ORGANOID_URL', 'ORGANOID_SHA256',
    'find_organoid_root', 'organoid_pairs', 'convert_organoid_basic',
    'download_organoid_basic', 'instance_union'
]
