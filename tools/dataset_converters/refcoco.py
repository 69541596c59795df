"""Prepare RefCOCO / RefCOCO+ / RefCOCOg: referred-object masks, verification.

Usage::

    python tools/dataset_converters/refcoco.py masks data/refer \
        --dataset refcoco --workers 8         # refcoco+ / refcocog alike
    python tools/dataset_converters/refcoco.py verify data/refer \
        --dataset refcoco

``masks`` writes ``<refer_root>/<dataset>/masks/<ann_id>.png`` (0/1, decoded
with pycocotools, atomically; existing ones kept) for every referred
annotation -- what ``RefCOCODataset`` otherwise writes lazily on first use.
``verify`` counts refs and sentences per split (published counts below),
checks that every referred image exists and that every mask has its image's
size. The splits are the official ones of the pickles; no split is drawn.
"""
import argparse
import os.path as osp
import sys

from mmsamptx.datasets.refcoco import (DEFAULT_SPLIT_BY, REFER_SPLITS,
                                       load_refer, referred_mask_path,
                                       write_referred_mask)
from mmsamptx.datasets.utils import image_size_checked, read_image_checked

# (dataset, split_by) -> split -> (refs, sentences), as published.
EXPECTED_COUNTS = {
    ('refcoco', 'unc'): dict(train=(42404, 120624), val=(3811, 10834),
                             testA=(1975, 5657), testB=(1810, 5095)),
    ('refcoco+', 'unc'): dict(train=(42278, 120191), val=(3805, 10758),
                              testA=(1975, 5726), testB=(1798, 4889)),
    ('refcocog', 'umd'): dict(train=(42226, 80512), val=(2573, 4896),
                              test=(5023, 9602)),
}


def _mask_job(job):
    ann, image, mask_dir = job
    return write_referred_mask(ann, image, mask_dir)


def write_masks(refer_root: str, dataset: str, split_by=None, mask_dir=None,
                workers: int = 4) -> int:
    """Write the mask PNG of every referred annotation; return how many."""
    from tqdm import tqdm
    split_by = split_by or DEFAULT_SPLIT_BY[dataset]
    refs, images, anns, _ = load_refer(refer_root, dataset, split_by)
    mask_dir = mask_dir or osp.join(refer_root, dataset, 'masks')
    jobs, seen = [], set()
    for ref in refs:
        if ref['ann_id'] in seen:
            continue
        seen.add(ref['ann_id'])
        if ref['ann_id'] not in anns or ref['image_id'] not in images:
            raise ValueError(f'ref {ref["ref_id"]} names annotation '
                             f'{ref["ann_id"]} / image {ref["image_id"]} '
                             'missing from instances.json')
        jobs.append((anns[ref['ann_id']], images[ref['image_id']], mask_dir))
    if workers and workers > 1:
        from multiprocessing import Pool
        with Pool(workers) as pool:
            for _ in tqdm(pool.imap_unordered(_mask_job, jobs, chunksize=64),
                          total=len(jobs), desc=f'{dataset} masks'):
                pass
    else:
        for job in tqdm(jobs, desc=f'{dataset} masks'):
            _mask_job(job)
    return len(jobs)


def verify(refer_root: str, dataset: str, split_by=None, mask_dir=None,
           img_prefix='images/train2014', expected=True) -> dict:
    """Count refs/sentences per split; check images and cached masks.

    Returns ``{split: dict(refs=, sentences=, images=)}``. Problems raise
    ``ValueError`` / ``FileNotFoundError`` naming the file.
    """
    from tqdm import tqdm
    split_by = split_by or DEFAULT_SPLIT_BY[dataset]
    refs, images, anns, _ = load_refer(refer_root, dataset, split_by)
    mask_dir = mask_dir or osp.join(refer_root, dataset, 'masks')
    valid = REFER_SPLITS[(dataset, split_by)]
    report = {s: dict(refs=0, sentences=0, images=set()) for s in valid}
    sizes = {}
    for ref in tqdm(refs, desc=f'verify {dataset}', disable=len(refs) < 1000):
        split = ref.get('split')
        if split not in report:
            raise ValueError(f'ref {ref["ref_id"]} has split {split!r}; '
                             f'{dataset} ({split_by}) has {list(valid)}')
        rep = report[split]
        rep['refs'] += 1
        rep['sentences'] += len(ref['sentences'])
        rep['images'].add(ref['image_id'])
        image = images[ref['image_id']]
        img_path = osp.join(refer_root, img_prefix, image['file_name'])
        if img_path not in sizes:
            sizes[img_path] = image_size_checked(img_path, 'image')
        mask_path = referred_mask_path(mask_dir, ref['ann_id'])
        if osp.isfile(mask_path):
            m = read_image_checked(mask_path, 'mask')
            if m.shape != sizes[img_path]:
                raise ValueError(f'mask {mask_path} is {m.shape} but image '
                                 f'{img_path} is {sizes[img_path]}')
            if m.max() > 1:
                raise ValueError(f'mask {mask_path} has value {m.max()}, '
                                 'expected 0/1')
    for s in report.values():
        s['images'] = len(s['images'])
    exp = EXPECTED_COUNTS.get((dataset, split_by)) if expected else None
    if exp:
        for split, (n_refs, n_sents) in exp.items():
            got = report[split]
            if (got['refs'], got['sentences']) != (n_refs, n_sents):
                raise ValueError(
                    f'{dataset} ({split_by}) {split}: {got["refs"]} refs / '
                    f'{got["sentences"]} sentences, expected {n_refs} / '
                    f'{n_sents}')
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    for name in ('masks', 'verify'):
        p = sub.add_parser(name)
        p.add_argument('refer_root')
        p.add_argument('--dataset', choices=sorted(DEFAULT_SPLIT_BY),
                       default='refcoco')
        p.add_argument('--split-by', default=None)
        p.add_argument('--workers', type=int, default=4)
        p.add_argument('--no-count-check', action='store_true')
    args = parser.parse_args(argv)
    if args.cmd == 'masks':
        n = write_masks(args.refer_root, args.dataset, args.split_by,
                        workers=args.workers)
        print(f'{n} referred-object masks ready')
    else:
        rep = verify(args.refer_root, args.dataset, args.split_by,
                     expected=not args.no_count_check)
        for split, r in rep.items():
            print(f'{split:>6}: {r["refs"]} refs, {r["sentences"]} '
                  f'sentences, {r["images"]} images')


if __name__ == '__main__':
    sys.exit(main())
