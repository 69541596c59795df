"""EMParticles, read as EMPS: particles in electron micrographs, PTSAM's second dataset.

PTSAM names the dataset "EMParticles"; the section that says where it comes
from could not be read here (docs/ptsam.md). This module reads the public
dataset that fits the name, the Electron Microscopy Particle Segmentation
(EMPS) dataset (Yildirim & Cole, J. Chem. Inf. Model. 2021,
doi:10.1021/acs.jcim.0c01455; github.com/by256/emps, MIT licence)::

    images/<id>.png    RGB micrograph (shortest side 512)
    segmaps/<id>.png   16-bit instance label map (0 = background)
    train.csv          366 ids, one per line, no header (official split)
    test.csv           99 ids

465 images in all. The converter writes the union of the instances as the
foreground.
"""
import os
import os.path as osp
from typing import Dict, List

from mmseg.registry import DATASETS

from .organoid_basic import instance_union
from .ptsam_binary import (PTSAMBinaryDataset, download_file, extract_zip,
                           image_hw, write_pair)

# The snapshot whose lists and counts were read (2021-03-11); GitHub does not
# publish checksums of its archives, so the download is checked by counts.
EMPS_COMMIT = 'dd8f86d714894fd08f3db80041893982ce058dd6'
EMPS_URL = f'https://github.com/by256/emps/archive/{EMPS_COMMIT}.zip'
EMPS_SPLITS = ('train', 'test')
EMPS_EXPECTED = dict(train=366, test=99)


def find_emps_root(path: str) -> str:
    """The folder holding ``images/``, ``segmaps/``, ``train.csv`` and
    ``test.csv`` (the path or one ``emps*`` folder inside it)."""
    def ok(p):
        return osp.isdir(osp.join(p, 'images')) and \
            osp.isdir(osp.join(p, 'segmaps')) and \
            osp.isfile(osp.join(p, 'train.csv'))
    if ok(path):
        return path
    if osp.isdir(path):
        for name in sorted(os.listdir(path)):
            if name.startswith('emps') and ok(osp.join(path, name)):
                return osp.join(path, name)
    raise FileNotFoundError(
        f'no EMPS folder at {path}: expected images/, segmaps/, train.csv and '
        'test.csv (git clone https://github.com/by256/emps, or its archive '
        'unpacked)')


def read_emps_list(path: str) -> List[str]:
    """Ids of an EMPS split list (one id per line; ``.png`` stripped)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'EMPS split list {path} does not exist')
    ids, seen = [], set()
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            sid = line.strip()
            if not sid:
                continue
            sid = sid.split(',')[0]
            sid = sid[:-4] if sid.endswith('.png') else sid
            if sid in seen:
                raise ValueError(f'EMPS split list {path} line {lineno}: id '
                                 f'{sid!r} is listed twice')
            seen.add(sid)
            ids.append(sid)
    return ids


def convert_emps(raw: str, out: str, overwrite: bool = False) -> Dict[str, int]:
    """Write the converted layout of ``train.csv`` / ``test.csv``; return counts.

    A listed id whose image or segmap is missing raises naming the list, the
    id and the file.
    """
    from tqdm import tqdm
    root = find_emps_root(raw)
    counts = {}
    for split in EMPS_SPLITS:
        lst = osp.join(root, f'{split}.csv')
        ids = read_emps_list(lst)
        for sid in tqdm(ids, desc=f'EMPS {split}'):
            img = osp.join(root, 'images', sid + '.png')
            seg = osp.join(root, 'segmaps', sid + '.png')
            for what, p in (('image', img), ('segmap', seg)):
                if not osp.isfile(p):
                    raise FileNotFoundError(f'{lst} lists {sid!r} but its '
                                            f'{what} {p} does not exist')
            write_pair(out, split, sid, img, instance_union(seg, image_hw(img)),
                       overwrite)
        counts[split] = len(ids)
    return counts


def download_emps(out_dir: str) -> str:
    """Fetch and unpack the repository snapshot; return the EMPS folder."""
    try:
        return find_emps_root(out_dir)
    except FileNotFoundError:
        pass
    archive = download_file(EMPS_URL, osp.join(out_dir, f'emps-{EMPS_COMMIT}.zip'))
    extract_zip(archive, out_dir)
    return find_emps_root(out_dir)


@DATASETS.register_module()
class EMParticlesDataset(PTSAMBinaryDataset):
    """EMParticles (EMPS) after ``tools/dataset_converters/em_particles.py
    convert``: splits ``train`` (366) / ``test`` (99), PNG images,
    foreground = particle. See :class:`PTSAMBinaryDataset`."""

    METAINFO = dict(classes=('background', 'particle'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    SPLITS = EMPS_SPLITS
    TEST_SPLIT = 'test'
    IMG_SUFFIX = '.png'


__all__ = [
    'EMParticlesDataset', 'EMPS_URL', 'EMPS_EXPECTED', 'find_emps_root',
    'read_emps_list', 'convert_emps', 'download_emps'
]
