"""Miniatures of PTSAM's four datasets in their official on-disk layouts.

Each ``make_*_raw(root)`` writes a few tiny images in the source's own file
names and formats and returns ``{(split, id): expected (H, W) bool mask}``,
the foreground worked out here without the converter's code (instances drawn
as axis-aligned rectangles, whose COCO polygon covers ``[x0, x1) x [y0, y1)``).
``build_converted(name, root)`` runs the converter on a miniature and writes a
2-shot list, for tests of configs that read the converted layout.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
from PIL import Image

COUNTS = dict(
    organoid_basic=dict(train=3, val=1, eval=2),
    em_particles=dict(train=4, test=2),
    livecell=dict(train=3, val=1, test=2),
    kvasir_seg=dict(train=4, val=2),
)


def _boxes(rng, h, w, n):
    """``n`` rectangles ``(x0, y0, x1, y1)`` inside an ``h x w`` image."""
    out = []
    for _ in range(n):
        x0 = int(rng.integers(0, w - 8))
        y0 = int(rng.integers(0, h - 8))
        out.append((x0, y0, x0 + int(rng.integers(3, 8)),
                    y0 + int(rng.integers(3, 8))))
    return out


def _instances(rng, h, w, n, labels):
    """An instance map (later instances over earlier) and its foreground."""
    inst = np.zeros((h, w), np.uint16)
    for (x0, y0, x1, y1), lab in zip(_boxes(rng, h, w, n), labels):
        inst[y0:y1, x0:x1] = lab
    return inst, inst > 0


def _rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _makedirs(*paths):
    for p in paths:
        os.makedirs(p, exist_ok=True)


def make_organoid_raw(root, counts=None, seed=0):
    """``root/OrganoidBasic_v20211206/{train,val,eval}/<stem>_img.jpg`` +
    ``<stem>_masks_organoid.png`` (16-bit instance map)."""
    rng = np.random.default_rng(seed)
    expected = {}
    for split, n in (counts or COUNTS['organoid_basic']).items():
        folder = osp.join(root, 'OrganoidBasic_v20211206', split)
        _makedirs(folder)
        for i in range(n):
            stem = f'{split}_plate{i}_well{i + 1}'
            h, w = 40 + 4 * i, 48
            Image.fromarray(_rgb(rng, h, w)).save(
                osp.join(folder, stem + '_img.jpg'), quality=90)
            inst, fg = _instances(rng, h, w, 3, [1, 2, 300])
            cv2.imwrite(osp.join(folder, stem + '_masks_organoid.png'), inst)
            expected[(split, stem)] = fg
    return expected


def make_emps_raw(root, counts=None, seed=1):
    """``root/images/<id>.png`` (RGB), ``root/segmaps/<id>.png`` (16-bit
    instances), ``root/train.csv`` / ``root/test.csv`` (one id per line)."""
    rng = np.random.default_rng(seed)
    _makedirs(osp.join(root, 'images'), osp.join(root, 'segmaps'))
    expected = {}
    for split, n in (counts or COUNTS['em_particles']).items():
        ids = [f'{split[:2]}{i:08x}' for i in range(n)]
        for i, sid in enumerate(ids):
            h, w = 32, 36 + 2 * i
            cv2.imwrite(osp.join(root, 'images', sid + '.png'),
                        _rgb(rng, h, w))
            inst, fg = _instances(rng, h, w, 3, [1, 2, 1000])
            cv2.imwrite(osp.join(root, 'segmaps', sid + '.png'), inst)
            expected[(split, sid)] = fg
        with open(osp.join(root, f'{split}.csv'), 'w') as f:
            f.write('\n'.join(ids))  # no header, no final newline
    return expected


LIVECELL_DIRS = dict(train='livecell_train_val_images',
                     val='livecell_train_val_images',
                     test='livecell_test_images')


def make_livecell_raw(root, counts=None, seed=2, per_cell_type=False):
    """``root/images/livecell_{train_val,test}_images/<name>.tif`` (8-bit
    grey) and ``root/annotations/LIVECell/livecell_coco_<split>.json`` with
    one rectangle polygon per cell (the last test image has none). The val
    file keeps its annotations as a dict keyed by id, the others as a COCO
    list. ``per_cell_type`` puts each image in a ``<cell type>/`` subfolder."""
    rng = np.random.default_rng(seed)
    expected = {}
    ann_id = 1
    for split, n in (counts or COUNTS['livecell']).items():
        img_dir = osp.join(root, 'images', LIVECELL_DIRS[split])
        images, anns = [], []
        for i in range(n):
            ctype = ('A172', 'BV2', 'SHSY5Y')[i % 3]
            name = f'{ctype}_Phase_{split}{i}_1_00d04h00m_{i + 1}.tif'
            h, w = 26, 30
            folder = osp.join(img_dir, ctype) if per_cell_type else img_dir
            _makedirs(folder)
            Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(
                osp.join(folder, name))
            img_id = 1000 * (len(expected) + 1)
            images.append(dict(id=img_id, file_name=name, height=h, width=w))
            fg = np.zeros((h, w), bool)
            cells = 0 if (split, i) == ('test', n - 1) else 3  # one empty
            for x0, y0, x1, y1 in _boxes(rng, h, w, cells):
                fg[y0:y1, x0:x1] = True
                poly = [x0, y0, x1, y0, x1, y1, x0, y1]
                anns.append(dict(id=ann_id, image_id=img_id, category_id=1,
                                 segmentation=[[float(v) for v in poly]],
                                 area=float((x1 - x0) * (y1 - y0)),
                                 bbox=[x0, y0, x1 - x0, y1 - y0], iscrowd=0))
                ann_id += 1
            expected[(split, osp.splitext(name)[0])] = fg
        data = dict(images=images, categories=[dict(id=1, name='cell')],
                    annotations={str(a['id']): a for a in anns}
                    if split == 'val' else anns)
        ann_dir = osp.join(root, 'annotations', 'LIVECell')
        _makedirs(ann_dir)
        with open(osp.join(ann_dir, f'livecell_coco_{split}.json'), 'w') as f:
            json.dump(data, f)
    return expected


def make_kvasir_raw(root, counts=None, seed=3):
    """``root/Kvasir-SEG/{images,masks}/<id>.jpg`` and ``root/{train,val}.txt``.

    Masks are JPEGs of 8x8-aligned white blocks on black (as the release,
    RGB), so thresholding at 128 recovers them exactly despite compression.
    """
    rng = np.random.default_rng(seed)
    base = osp.join(root, 'Kvasir-SEG')
    _makedirs(osp.join(base, 'images'), osp.join(base, 'masks'))
    expected = {}
    for split, n in (counts or COUNTS['kvasir_seg']).items():
        ids = [f'cju{split}{i:04d}qkwl' for i in range(n)]
        for i, sid in enumerate(ids):
            h, w = 40, 48 + 8 * i
            Image.fromarray(_rgb(rng, h, w)).save(
                osp.join(base, 'images', sid + '.jpg'), quality=90)
            fg = np.zeros((h, w), bool)
            by, bx = int(rng.integers(0, h // 8 - 1)), int(
                rng.integers(0, w // 8 - 2))
            fg[8 * by:8 * by + 16, 8 * bx:8 * bx + 24] = True
            m = np.repeat((fg * 255).astype(np.uint8)[..., None], 3, -1)
            Image.fromarray(m).save(osp.join(base, 'masks', sid + '.jpg'),
                                    quality=90)
            expected[(split, sid)] = fg
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.write(''.join(i + '\n' for i in ids))
    return expected


RAW_MAKERS = dict(organoid_basic=make_organoid_raw, em_particles=make_emps_raw,
                  livecell=make_livecell_raw, kvasir_seg=make_kvasir_raw)


def build_converted(name, root, num_shots=2, seed=0):
    """Convert a miniature of dataset ``name`` into ``root/data`` and write
    its ``num_shots``-shot list; return the data root."""
    from mmsamptx.datasets import (EMParticlesDataset, KvasirSEGDataset,
                                   LIVECellDataset, OrganoidBasicDataset)
    from mmsamptx.datasets.em_particles import convert_emps
    from mmsamptx.datasets.kvasir_seg import convert_kvasir
    from mmsamptx.datasets.livecell import convert_livecell
    from mmsamptx.datasets.organoid_basic import convert_organoid_basic
    from mmsamptx.datasets.ptsam_binary import make_shots
    convert = dict(organoid_basic=convert_organoid_basic,
                   em_particles=convert_emps, livecell=convert_livecell,
                   kvasir_seg=convert_kvasir)[name]
    cls = dict(organoid_basic=OrganoidBasicDataset,
               em_particles=EMParticlesDataset, livecell=LIVECellDataset,
               kvasir_seg=KvasirSEGDataset)[name]
    raw, data = osp.join(root, 'raw'), osp.join(root, 'data')
    RAW_MAKERS[name](raw)
    convert(raw, data)
    make_shots(data, 'train', num_shots, seed, cls.IMG_SUFFIX)
    return data
