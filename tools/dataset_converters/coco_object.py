"""Prepare COCO object (81 classes): instance JSON -> semantic PNGs, verify, splits.

Usage::

    python tools/dataset_converters/coco_object.py convert data/coco \
        --workers 8                       # both train2017 and val2017
    python tools/dataset_converters/coco_object.py verify data/coco
    python tools/dataset_converters/coco_object.py split data/coco \
        --denom 512 --seed 0 --out splits/coco/1_512/seed0
    # UniMatch's published lists name masks/<id>.png (one flat folder):
    python tools/dataset_converters/coco_object.py convert data/coco \
        --layout unimatch
    python tools/dataset_converters/coco_object.py published 1_512 \
        --root data/coco

Mask layouts (``--layout``): ``nested`` (default) writes
``masks/{train2017,val2017}/<id>.png``; ``unimatch`` writes
``masks/<id>.png`` for both subsets, the paths UniMatch's lists name (ids are
unique across train2017 and val2017).

``published`` takes ``1_512``, ``1_256``, ``1_128``, ``1_64``, ``1_32`` or
``val``, keeps the list in the split cache (``~/.cache/mmsamptx/splits``,
``$MMSAMPTX_SPLITS_DIR`` or ``--splits-dir``), checks its sha256 and, with
``--root``, that every image and mask it names exists. Configs name it as
``published_split='coco/1_512'``.

Label rules (``instance_label_map``):

- label = 1 + index of the category id in ``COCO_CATEGORY_IDS`` (1..80),
  0 = background, 255 = ignore;
- overlaps: annotations are painted in order of decreasing ``area`` (ties:
  increasing annotation id), so a smaller object lying on a larger one stays
  visible ("smaller on top"); the order does not depend on JSON order;
- ``iscrowd=1`` regions: ``--crowd label`` (default) paints them with their
  class like any other region, ``ignore`` paints them 255, ``skip`` leaves
  them out.

Every PNG is written through ``atomic_write``: a run killed half-way leaves
only complete PNGs, and a re-run skips those (``--overwrite`` redoes them).
``split`` draws ``ceil(n / denom)`` ids (1/512 of 118,287 = 232) with
``numpy.random.RandomState(seed)`` from the sorted training ids.
"""
import argparse
import json
import os.path as osp
import sys
from collections import defaultdict

import numpy as np

from mmsamptx.datasets.coco_object import COCO_CATEGORY_IDS, COCO_CLASSES
from mmsamptx.datasets.published_splits import fetch_published_split
from mmsamptx.datasets.utils import (DatasetVerificationError,
                                     coco_segm_to_mask, format_histogram,
                                     list_files, seeded_subset, split_size,
                                     verify_pairs, write_png,
                                     write_split_file)

SUBSETS = ('train2017', 'val2017')
EXPECTED_COUNTS = dict(train2017=118287, val2017=5000)
CAT_TO_LABEL = {cid: i + 1 for i, cid in enumerate(COCO_CATEGORY_IDS)}
CROWD_MODES = ('label', 'ignore', 'skip')
LAYOUTS = ('nested', 'unimatch')


def mask_path(mask_dir: str, subset: str, stem: str,
              layout: str = 'nested') -> str:
    """Where the label PNG of image ``stem`` goes in ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    if layout == 'unimatch':
        return osp.join(mask_dir, stem + '.png')
    return osp.join(mask_dir, subset, stem + '.png')


def load_instances(json_path: str) -> dict:
    """Load an ``instances_*.json``; raise naming the file if absent/broken."""
    if not osp.isfile(json_path):
        raise FileNotFoundError(
            f'COCO annotation file {json_path} does not exist; download '
            'annotations_trainval2017.zip from https://cocodataset.org and '
            'extract it into the COCO root')
    try:
        with open(json_path, encoding='utf-8') as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'COCO annotation file {json_path} is not valid '
                         f'JSON (truncated?): {e}') from e
    for key in ('images', 'annotations', 'categories'):
        if key not in data:
            raise ValueError(f'COCO annotation file {json_path} has no '
                             f'{key!r} list')
    unknown = sorted({c['id'] for c in data['categories']} - set(CAT_TO_LABEL))
    if unknown:
        raise ValueError(f'COCO annotation file {json_path} has category ids '
                         f'{unknown} outside the 80 COCO thing categories')
    return data


def instance_label_map(anns, height: int, width: int,
                       crowd: str = 'label') -> np.ndarray:
    """Paint one image's instance annotations into a uint8 semantic label map.

    See the module docstring for the overlap and crowd rules.
    """
    if crowd not in CROWD_MODES:
        raise ValueError(f'crowd must be one of {CROWD_MODES}, got {crowd!r}')
    label = np.zeros((height, width), np.uint8)
    order = sorted(anns, key=lambda a: (-float(a.get('area', 0)), a['id']))
    for ann in order:
        if ann['category_id'] not in CAT_TO_LABEL:
            raise ValueError(f'annotation {ann["id"]} has category id '
                             f'{ann["category_id"]}, not a COCO thing class')
        is_crowd = bool(ann.get('iscrowd', 0))
        if is_crowd and crowd == 'skip':
            continue
        mask = coco_segm_to_mask(ann['segmentation'], height, width)
        value = 255 if is_crowd and crowd == 'ignore' else \
            CAT_TO_LABEL[ann['category_id']]
        label[mask > 0] = value
    return label


def _convert_one(job):
    """Worker: write the label PNG of one image; return (stem, written)."""
    img, anns, out_path, crowd, overwrite = job
    if not overwrite and osp.isfile(out_path):
        return out_path, False  # complete: atomic writes never leave halves
    label = instance_label_map(anns, img['height'], img['width'], crowd)
    write_png(out_path, label)
    return out_path, True


def convert(coco_root: str, subsets=SUBSETS, out_dir=None, workers: int = 4,
            crowd: str = 'label', overwrite: bool = False,
            layout: str = 'nested') -> dict:
    """Write ``<out_dir>/<subset>/<12-digit id>.png`` for every image.

    ``out_dir`` defaults to ``<coco_root>/masks``; ``layout='unimatch'``
    writes ``<out_dir>/<12-digit id>.png`` instead. Returns the number of
    images per subset. Images without annotation get an all-background PNG.
    """
    from tqdm import tqdm
    if crowd not in CROWD_MODES:
        raise ValueError(f'crowd must be one of {CROWD_MODES}, got {crowd!r}')
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    out_dir = out_dir or osp.join(coco_root, 'masks')
    counts = {}
    for subset in subsets:
        data = load_instances(
            osp.join(coco_root, 'annotations', f'instances_{subset}.json'))
        by_image = defaultdict(list)
        for ann in data['annotations']:
            by_image[ann['image_id']].append(ann)
        jobs = []
        for img in sorted(data['images'], key=lambda i: i['id']):
            stem = osp.splitext(img['file_name'])[0]
            jobs.append((img, by_image.get(img['id'], []),
                         mask_path(out_dir, subset, stem, layout), crowd,
                         overwrite))
        if workers and workers > 1:
            from multiprocessing import Pool
            with Pool(workers) as pool:
                for _ in tqdm(pool.imap_unordered(_convert_one, jobs,
                                                  chunksize=32),
                              total=len(jobs), desc=f'COCO {subset}'):
                    pass
        else:
            for job in tqdm(jobs, desc=f'COCO {subset}'):
                _convert_one(job)
        counts[subset] = len(jobs)
    return counts


def pairs(coco_root: str, subset: str, mask_dir=None, layout: str = 'nested'):
    """(image, label) path pairs of one subset, from the image folder."""
    img_dir = osp.join(coco_root, subset)
    mask_dir = mask_dir or osp.join(coco_root, 'masks')
    return [(osp.join(img_dir, n), mask_path(mask_dir, subset, n[:-4], layout))
            for n in list_files(img_dir, '.jpg')]


def verify(coco_root: str, subsets=SUBSETS, expected_counts=EXPECTED_COUNTS,
           workers: int = 0, mask_dir=None, layout: str = 'nested') -> dict:
    """Check counts, label values (0..80, 255) and sizes of every pair."""
    reports = {}
    for subset in subsets:
        rep = verify_pairs(
            pairs(coco_root, subset, mask_dir, layout), len(COCO_CLASSES),
            background_index=0, workers=workers, desc=f'COCO {subset}')
        if expected_counts and rep['num_images'] != expected_counts[subset]:
            raise ValueError(
                f'COCO {subset}: found {rep["num_images"]} images in '
                f'{osp.join(coco_root, subset)}, expected '
                f'{expected_counts[subset]}')
        reports[subset] = rep
    return reports


def make_split(coco_root: str, denom: int, seed: int, out_dir: str,
               subset: str = 'train2017'):
    """Write ``labeled.txt``/``unlabeled.txt`` for a seeded 1/denom split.

    Ids are the image file stems listed in ``instances_<subset>.json``.
    """
    data = load_instances(
        osp.join(coco_root, 'annotations', f'instances_{subset}.json'))
    ids = sorted(osp.splitext(i['file_name'])[0] for i in data['images'])
    if not ids:
        raise ValueError(f'instances_{subset}.json lists no image')
    labeled = seeded_subset(ids, split_size(len(ids), denom), seed)
    chosen = set(labeled)
    write_split_file(osp.join(out_dir, 'labeled.txt'), labeled)
    write_split_file(osp.join(out_dir, 'unlabeled.txt'),
                     [i for i in ids if i not in chosen])
    return labeled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('convert', help='instances JSON -> label PNGs')
    p.add_argument('coco_root')
    p.add_argument('--out', default=None, help='default <coco_root>/masks')
    p.add_argument('--subsets', nargs='+', default=list(SUBSETS))
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--crowd', choices=CROWD_MODES, default='label')
    p.add_argument('--layout', choices=LAYOUTS, default='nested',
                   help='nested: masks/<subset>/<id>.png; unimatch: '
                   'masks/<id>.png')
    p.add_argument('--overwrite', action='store_true')
    p = sub.add_parser('verify', help='check counts, labels, histogram')
    p.add_argument('coco_root')
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--no-count-check', action='store_true')
    p.add_argument('--layout', choices=LAYOUTS, default='nested')
    p = sub.add_parser('split', help='seeded 1/denom labelled split')
    p.add_argument('coco_root')
    p.add_argument('--denom', type=int, default=512)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    p = sub.add_parser('published',
                       help="UniMatch's published list: fetch + verify")
    p.add_argument('name', help='1_512, 1_256, 1_128, 1_64, 1_32 or val')
    p.add_argument('--root', default=None,
                   help='COCO root whose images/masks the list must name')
    p.add_argument('--out', default=None, help='also copy the list here')
    p.add_argument('--splits-dir', default=None, help='split cache folder')
    p.add_argument('--base-url', default=None, help='download mirror')
    args = parser.parse_args(argv)
    try:
        run(args)
    except DatasetVerificationError:
        raise  # its report lists each bad file, one per line
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


def run(args):
    """Run the parsed sub-command."""
    if args.cmd == 'published':
        info = fetch_published_split(args.name, 'coco', args.root, args.out,
                                     args.splits_dir, args.base_url)
        checked = f', every file present under {args.root}' if args.root \
            else ''
        print(f'{info["name"]}: {info["lines"]} lines, sha256 ok{checked}: '
              f'{info["copy"] or info["path"]}')
    elif args.cmd == 'convert':
        print(convert(args.coco_root, args.subsets, args.out, args.workers,
                      args.crowd, args.overwrite, args.layout))
    elif args.cmd == 'verify':
        reports = verify(args.coco_root, expected_counts=None
                         if args.no_count_check else EXPECTED_COUNTS,
                         workers=args.workers, layout=args.layout)
        for subset, rep in reports.items():
            print(f'== {subset}: {rep["num_images"]} images, '
                  f'{len(rep["images_without_labels"])} without any object')
            print(format_histogram(COCO_CLASSES, rep['image_histogram'],
                                   rep['pixel_histogram']))
    else:
        ids = make_split(args.coco_root, args.denom, args.seed, args.out)
        print(f'wrote {len(ids)} labelled ids to '
              f'{osp.join(args.out, "labeled.txt")}')


if __name__ == '__main__':
    sys.exit(main())
