"""Prepare camouflaged-object datasets (COD10K, CAMO, CHAMELEON, NC4K).

Usage::

    python tools/dataset_converters/cod.py verify data/COD10K-v3 \
        --split Train --expect 3040          # CAM images only (default)
    python tools/dataset_converters/cod.py binarize data/CAMO --split Train
    python tools/dataset_converters/cod.py split data/COD10K-v3 \
        --num 16 --seed 0 --out splits/cod10k/16shot/seed0

``verify`` checks every ``<Split>/Image/*.jpg`` has a ``<Split>/GT_Object``
PNG of the same size holding only 0/255 (or 0/1), prints the per-class image
counts (class names parsed from COD10K file names) and the images whose mask
is empty. ``binarize`` writes ``<Split>/GT_Object_bin/*.png`` thresholded at
128 (0/255), atomically, for datasets whose masks carry anti-aliased values;
point ``data_prefix['seg_map_path']`` at it. ``split`` writes ``labeled.txt``
with a seeded subset of the (CAM) training stems, readable by ``CODDataset``
through ``ann_file``.
"""
import argparse
import os.path as osp
import sys
from collections import Counter

import numpy as np

from mmsamptx.datasets.cod import parse_cod10k_name
from mmsamptx.datasets.utils import (list_files, read_image_checked,
                                     seeded_subset, split_size, verify_pairs,
                                     write_png, write_split_file)

# Published image counts (CAM images only for COD10K).
EXPECTED_COUNTS = {
    'COD10K': dict(Train=3040, Test=2026),
    'CAMO': dict(Train=1000, Test=250),
    'CHAMELEON': dict(Test=76),
    'NC4K': dict(Test=4121),
}


def stems(root: str, split: str, include_noncam: bool = False,
          img_suffix: str = '.jpg'):
    """Image stems of ``<root>/<split>/Image``, NonCAM left out by default."""
    out = []
    for name in list_files(osp.join(root, split, 'Image'), img_suffix):
        stem = name[:-len(img_suffix)]
        parsed = parse_cod10k_name(stem)
        if parsed is not None and not parsed[0] and not include_noncam:
            continue
        out.append(stem)
    return out


def class_name_of(stem: str, fallback: str = 'camouflaged object') -> str:
    parsed = parse_cod10k_name(stem)
    return parsed[2] if parsed is not None else fallback


def verify(root: str, split: str = 'Train', include_noncam: bool = False,
           expected_count=None, mask_folder: str = 'GT_Object',
           workers: int = 0) -> dict:
    """Check image/mask pairs; return counts, class histogram, empty masks."""
    names = stems(root, split, include_noncam)
    pairs = [(osp.join(root, split, 'Image', s + '.jpg'),
              osp.join(root, split, mask_folder, s + '.png')) for s in names]
    rep = verify_pairs(pairs, 2, ignore_index=-1, label_map={255: 1},
                       background_index=0, workers=workers,
                       desc=f'{osp.basename(root)} {split}')
    if expected_count is not None and rep['num_images'] != expected_count:
        raise ValueError(f'{osp.join(root, split, "Image")}: found '
                         f'{rep["num_images"]} images, expected '
                         f'{expected_count}')
    rep['class_histogram'] = dict(sorted(Counter(
        class_name_of(s) for s in names).items()))
    return rep


def binarize(root: str, split: str = 'Train', threshold: int = 128,
             out_folder: str = 'GT_Object_bin') -> int:
    """Write ``mask >= threshold`` as 0/255 PNGs into ``<split>/<out_folder>``."""
    from tqdm import tqdm
    src = osp.join(root, split, 'GT_Object')
    names = list_files(src, '.png')
    if not names:
        raise ValueError(f'no mask PNG in {src}')
    for n in tqdm(names, desc=f'binarize {split}'):
        m = read_image_checked(osp.join(src, n), 'mask')
        if m.ndim == 3:
            m = m[..., 0]
        write_png(osp.join(root, split, out_folder, n),
                  np.where(m >= threshold, 255, 0).astype(np.uint8))
    return len(names)


def make_split(root: str, out_dir: str, seed: int = 0, num=None, denom=None,
               split: str = 'Train', include_noncam: bool = False):
    """Write ``labeled.txt`` with ``num`` (or ``ceil(n / denom)``) stems."""
    names = stems(root, split, include_noncam)
    if not names:
        raise ValueError(f'no image in {osp.join(root, split, "Image")}')
    if (num is None) == (denom is None):
        raise ValueError('give exactly one of num and denom')
    n = num if num is not None else split_size(len(names), denom)
    chosen = seeded_subset(names, n, seed)
    write_split_file(osp.join(out_dir, 'labeled.txt'), chosen)
    return chosen


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('verify')
    p.add_argument('root')
    p.add_argument('--split', default='Train')
    p.add_argument('--include-noncam', action='store_true')
    p.add_argument('--expect', type=int, default=None)
    p.add_argument('--workers', type=int, default=4)
    p = sub.add_parser('binarize')
    p.add_argument('root')
    p.add_argument('--split', default='Train')
    p.add_argument('--threshold', type=int, default=128)
    p = sub.add_parser('split')
    p.add_argument('root')
    p.add_argument('--num', type=int, default=None)
    p.add_argument('--denom', type=int, default=None)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    if args.cmd == 'verify':
        rep = verify(args.root, args.split, args.include_noncam, args.expect,
                     workers=args.workers)
        print(f'{rep["num_images"]} images, '
              f'{len(rep["images_without_labels"])} with an empty mask')
        for name, n in rep['class_histogram'].items():
            print(f'{name:<30} {n:>6}')
    elif args.cmd == 'binarize':
        n = binarize(args.root, args.split, args.threshold)
        print(f'wrote {n} binary masks')
    else:
        ids = make_split(args.root, args.out, args.seed, args.num, args.denom)
        print(f'wrote {len(ids)} ids to {osp.join(args.out, "labeled.txt")}')


if __name__ == '__main__':
    sys.exit(main())
