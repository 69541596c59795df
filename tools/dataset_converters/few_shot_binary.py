"""Prepare few-shot binary datasets: DSB 2018 -> folder layout, verify, N-shot split.

Usage::

    # 2018 Data Science Bowl (Kaggle, stage1_train.zip extracted)
    python tools/dataset_converters/few_shot_binary.py dsb2018 \
        data/dsb2018/stage1_train --out data/dsb2018_binary
    python tools/dataset_converters/few_shot_binary.py verify \
        data/dsb2018_binary --expect 670
    python tools/dataset_converters/few_shot_binary.py split \
        data/dsb2018_binary --num-shots 16 --seed 0 \
        --out splits/dsb2018/16shot/seed0

``dsb2018`` writes ``<out>/images/<id>.png`` (a copy) and
``<out>/masks/<id>.png`` (union of the nucleus masks, 0/255) through
``atomic_write``; existing outputs are kept on a re-run. ``split`` writes
``train.txt`` (the ``num_shots`` ids ``FewShotBinaryDataset`` picks with the
same seed) and ``test.txt`` (the rest).
"""
import argparse
import os
import os.path as osp
import sys

from mmsamptx.datasets.few_shot_binary import (dsb2018_union_mask,
                                               folder_pairs)
from mmsamptx.datasets.utils import (format_histogram, read_image_checked,
                                     seeded_subset, verify_pairs, write_png,
                                     write_split_file)
from mmsamptx.utils import atomic_write


def _convert_one(job):
    sample_dir, sid, out_dir, overwrite = job
    img_src = osp.join(sample_dir, 'images', sid + '.png')
    img_dst = osp.join(out_dir, 'images', sid + '.png')
    mask_dst = osp.join(out_dir, 'masks', sid + '.png')
    if overwrite or not osp.isfile(img_dst):
        read_image_checked(img_src, 'image')  # refuse to copy a broken file
        with open(img_src, 'rb') as f:
            data = f.read()
        with atomic_write(img_dst, 'wb') as f:
            f.write(data)
    if overwrite or not osp.isfile(mask_dst):
        write_png(mask_dst, dsb2018_union_mask(sample_dir))
    return sid


def convert_dsb2018(stage_dir: str, out_dir: str, workers: int = 4,
                    overwrite: bool = False) -> int:
    """Turn ``stage1_train/<id>/{images,masks}`` into the folder layout."""
    from tqdm import tqdm
    if not osp.isdir(stage_dir):
        raise FileNotFoundError(f'DSB 2018 folder {stage_dir} does not exist')
    jobs = []
    for sid in sorted(os.listdir(stage_dir)):
        sample_dir = osp.join(stage_dir, sid)
        if sid.startswith('.') or not osp.isdir(sample_dir):
            continue
        if not osp.isfile(osp.join(sample_dir, 'images', sid + '.png')):
            raise FileNotFoundError(
                f'DSB 2018 sample {sid}: image '
                f'{osp.join(sample_dir, "images", sid + ".png")} does not '
                'exist')
        jobs.append((sample_dir, sid, out_dir, overwrite))
    if not jobs:
        raise ValueError(f'no DSB 2018 sample folder in {stage_dir}')
    if workers and workers > 1:
        from multiprocessing import Pool
        with Pool(workers) as pool:
            for _ in tqdm(pool.imap_unordered(_convert_one, jobs),
                          total=len(jobs), desc='DSB 2018'):
                pass
    else:
        for job in tqdm(jobs, desc='DSB 2018'):
            _convert_one(job)
    return len(jobs)


def verify(root: str, expected_count=None, img_suffix='.png',
           mask_suffix='.png', workers: int = 0) -> dict:
    """Check a folder layout: stems match, masks binary (0/1 or 0/255), sizes."""
    pairs = folder_pairs(osp.join(root, 'images'), osp.join(root, 'masks'),
                         img_suffix, mask_suffix)
    rep = verify_pairs([(i, m) for _, i, m in pairs], 2, ignore_index=-1,
                       label_map={255: 1}, background_index=0,
                       workers=workers, desc=f'verify {root}')
    if expected_count is not None and rep['num_images'] != expected_count:
        raise ValueError(f'{root}: found {rep["num_images"]} image/mask '
                         f'pairs, expected {expected_count}')
    return rep


def make_split(root: str, num_shots: int, seed: int, out_dir: str,
               img_suffix='.png', mask_suffix='.png'):
    """Write ``train.txt`` (N shots) and ``test.txt`` (the rest)."""
    stems = [s for s, _, _ in folder_pairs(
        osp.join(root, 'images'), osp.join(root, 'masks'), img_suffix,
        mask_suffix)]
    if num_shots >= len(stems):
        raise ValueError(f'num_shots={num_shots} leaves no held-out image: '
                         f'only {len(stems)} images in {root}')
    shots = seeded_subset(stems, num_shots, seed)
    write_split_file(osp.join(out_dir, 'train.txt'), shots)
    write_split_file(osp.join(out_dir, 'test.txt'),
                     sorted(set(stems) - set(shots)))
    return shots


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('dsb2018', help='stage1_train -> images/ + masks/')
    p.add_argument('stage_dir')
    p.add_argument('--out', required=True)
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--overwrite', action='store_true')
    p = sub.add_parser('verify', help='check pairs, binary masks, counts')
    p.add_argument('root')
    p.add_argument('--expect', type=int, default=None)
    p.add_argument('--workers', type=int, default=4)
    p = sub.add_parser('split', help='seeded N-shot split')
    p.add_argument('root')
    p.add_argument('--num-shots', type=int, default=16)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    if args.cmd == 'dsb2018':
        n = convert_dsb2018(args.stage_dir, args.out, args.workers,
                            args.overwrite)
        print(f'wrote {n} image/mask pairs to {args.out}')
    elif args.cmd == 'verify':
        rep = verify(args.root, args.expect, workers=args.workers)
        print(f'{rep["num_images"]} pairs, '
              f'{len(rep["images_without_labels"])} with an empty mask')
        print(format_histogram(('background', 'foreground'),
                               rep['image_histogram'], rep['pixel_histogram']))
    else:
        shots = make_split(args.root, args.num_shots, args.seed, args.out)
        print(f'wrote {len(shots)} shots to {osp.join(args.out, "train.txt")}')


if __name__ == '__main__':
    sys.exit(main())
