"""LIVECell: label-free phase-contrast images of eight cell types, PTSAM's third dataset.

Source: Edlund et al., "LIVECell -- A large-scale dataset for label-free live
cell segmentation", Nature Methods 2021 (doi:10.1038/s41592-021-01249-6);
sartorius-research.github.io/LIVECell, CC BY-NC 4.0. Files, as published on
the project's S3 bucket::

    images.zip -> images/livecell_train_val_images/<name>.tif  (train + val)
                  images/livecell_test_images/<name>.tif
    annotations/LIVECell/livecell_coco_{train,val,test}.json

The three COCO files are the official split; each lists its images
(``file_name``, ``height``, ``width``) and one polygon annotation per cell.
The converter decodes every instance with pycocotools and writes their union
as the foreground. Images are 8-bit grey TIFFs of 704x520.
"""
import json
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from mmseg.registry import DATASETS

from .ptsam_binary import (PTSAMBinaryDataset, download_file, extract_zip,
                           image_hw, write_pair)

LIVECELL_BASE = ('http://livecell-dataset.s3.eu-central-1.amazonaws.com/'
                 'LIVECell_dataset_2021')
LIVECELL_IMAGES_URL = f'{LIVECELL_BASE}/images.zip'
LIVECELL_SPLITS = ('train', 'val', 'test')
LIVECELL_JSON = 'livecell_coco_{}.json'
LIVECELL_JSON_URL = f'{LIVECELL_BASE}/annotations/LIVECell/' + LIVECELL_JSON
LIVECELL_IMAGE_DIRS = dict(train='livecell_train_val_images',
                           val='livecell_train_val_images',
                           test='livecell_test_images')
# Per-split image counts: the COCO files are the reference (convert checks
# every listed image); no count is asserted beyond them.
LIVECELL_EXPECTED: Dict[str, int] = {}


def livecell_json_path(raw: str, split: str) -> str:
    """``<raw>/annotations/LIVECell/livecell_coco_<split>.json`` or
    ``<raw>/livecell_coco_<split>.json``."""
    name = LIVECELL_JSON.format(split)
    for cand in (osp.join(raw, 'annotations', 'LIVECell', name),
                 osp.join(raw, name)):
        if osp.isfile(cand):
            return cand
    raise FileNotFoundError(
        f'LIVECell annotation file {name} not found under {raw} (expected '
        f'{osp.join(raw, "annotations", "LIVECell", name)})')


def livecell_image_dir(raw: str, split: str) -> str:
    """``<raw>/images/<livecell_train_val_images | livecell_test_images>``."""
    folder = osp.join(raw, 'images', LIVECELL_IMAGE_DIRS[split])
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'LIVECell image folder {folder} does not exist (unpack '
            f'images.zip into {raw})')
    return folder


def load_livecell_coco(json_path: str):
    """A pycocotools ``COCO`` of a LIVECell file.

    The annotations may be a list (COCO) or a dict keyed by annotation id;
    an annotation whose ``image_id`` is not in the image list raises
    ``ValueError`` naming the file and the id.
    """
    from pycocotools.coco import COCO
    with open(json_path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{json_path} is not valid JSON: {e}') from e
    if not isinstance(data, dict) or 'images' not in data:
        raise ValueError(f'{json_path} has no "images" list: not a COCO file')
    anns = data.get('annotations', [])
    if isinstance(anns, dict):
        anns = list(anns.values())
    data['annotations'] = anns
    data.setdefault('categories', [dict(id=1, name='cell')])
    img_ids = {im['id'] for im in data['images']}
    stray = sorted({a['image_id'] for a in anns} - img_ids)
    if stray:
        raise ValueError(f'{json_path}: annotations name image ids {stray[:5]} '
                         'that its image list does not hold')
    coco = COCO()
    coco.dataset = data
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # createIndex prints
        coco.createIndex()
    return coco


def find_livecell_image(img_dir: str, file_name: str) -> str:
    """The image file: ``<img_dir>/<file_name>`` or, in the per-cell-type
    layout, ``<img_dir>/<cell type>/<file_name>``; '' if neither exists."""
    p = osp.join(img_dir, file_name)
    if osp.isfile(p):
        return p
    p = osp.join(img_dir, file_name.split('_')[0], file_name)
    return p if osp.isfile(p) else ''


def livecell_images(coco, json_path: str,
                    img_dir: str) -> List[Tuple[dict, str]]:
    """``(image record, path)`` of every listed image, sorted by file name.

    The image list and the files must agree: images listed but absent, or
    whose size differs from the listed ``height``/``width``, raise
    ``ValueError`` naming the JSON, the folder and the first files.
    """
    out, missing, wrong = [], [], []
    for im in sorted(coco.dataset['images'], key=lambda r: r['file_name']):
        path = find_livecell_image(img_dir, im['file_name'])
        if not path:
            missing.append(im['file_name'])
            continue
        hw = image_hw(path)
        if hw != (im['height'], im['width']):
            wrong.append(f'{im["file_name"]} is {hw[1]}x{hw[0]}, listed '
                         f'{im["width"]}x{im["height"]}')
        out.append((im, path))
    if missing:
        raise ValueError(
            f'{json_path} lists {len(missing)} image(s) not found in '
            f'{img_dir}: {missing[:5]}')
    if wrong:
        raise ValueError(f'{json_path} and the images in {img_dir} disagree '
                         f'on size: {wrong[:3]}')
    return out


def livecell_mask(coco, img_id: int) -> np.ndarray:
    """Union of an image's instances; ``(H, W)`` bool.

    Each annotation becomes an RLE (``COCO.annToRLE``: polygons, RLE or
    uncompressed RLE); pycocotools merges them and decodes once, instead of
    one full-size mask per cell (LIVECell images hold hundreds of cells).
    """
    import warnings

    from pycocotools import mask as mask_utils
    im = coco.imgs[img_id]
    rles = [coco.annToRLE(a)
            for a in coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))]
    if not rles:
        return np.zeros((im['height'], im['width']), bool)
    with warnings.catch_warnings():  # numpy 2 copy-keyword notice
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode(mask_utils.merge(rles, intersect=False)) > 0


def convert_livecell(raw: str, out: str, splits=LIVECELL_SPLITS,
                     overwrite: bool = False) -> Dict[str, int]:
    """Write the converted layout of each official split; return counts."""
    from tqdm import tqdm
    counts = {}
    for split in splits:
        json_path = livecell_json_path(raw, split)
        coco = load_livecell_coco(json_path)
        records = livecell_images(coco, json_path,
                                  livecell_image_dir(raw, split))
        for im, path in tqdm(records, desc=f'LIVECell {split}'):
            sid = osp.splitext(im['file_name'])[0]
            write_pair(out, split, sid, path, livecell_mask(coco, im['id']),
                       overwrite)
        counts[split] = len(records)
    return counts


def download_livecell(out_dir: str) -> str:
    """Fetch images.zip and the three COCO files into ``out_dir`` and unpack.

    The project publishes no checksums; ``convert`` checks every listed image.
    """
    for split in LIVECELL_SPLITS:
        name = LIVECELL_JSON.format(split)
        download_file(LIVECELL_JSON_URL.format(split),
                      osp.join(out_dir, 'annotations', 'LIVECell', name))
    if not all(osp.isdir(osp.join(out_dir, 'images', d))
               for d in set(LIVECELL_IMAGE_DIRS.values())):
        archive = download_file(LIVECELL_IMAGES_URL,
                                osp.join(out_dir, 'images.zip'))
        extract_zip(archive, out_dir)
    return out_dir


@DATASETS.register_module()
class LIVECellDataset(PTSAMBinaryDataset):
    """LIVECell after ``tools/dataset_converters/livecell.py convert``:
    splits ``train`` / ``val`` / ``test``, 8-bit TIFF images (read as 3
    channels), foreground = any cell. See :class:`PTSAMBinaryDataset`."""

    METAINFO = dict(classes=('background', 'cell'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    SPLITS = LIVECELL_SPLITS
    TEST_SPLIT = 'test'
    IMG_SUFFIX = '.tif'


__all__ = [
    'LIVECellDataset', 'LIVECELL_IMAGES_URL', 'LIVECELL_JSON_URL',
    'livecell_json_path', 'livecell_image_dir', 'load_livecell_coco',
    'livecell_images', 'livecell_mask', 'convert_livecell',
    'download_livecell'
]
