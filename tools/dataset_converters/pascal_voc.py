"""Prepare PASCAL VOC 2012: download, verify a split, place a published split list.

Usage::

    # the official trainval archive (offline: the message names the URL and
    # where to place the tar; a placed tar is unpacked)
    python tools/dataset_converters/pascal_voc.py download --out data/
    # every image/label a split names: present, same size, labels in {0..20, 255}
    python tools/dataset_converters/pascal_voc.py verify data/VOCdevkit/VOC2012 \
        --split val --expect 1449
    python tools/dataset_converters/pascal_voc.py verify data/VOCdevkit/VOC2012 \
        --split 92 --expect 92
    # UniMatch's published 92-image list: fetch once, check its sha256, copy it
    # to data/splits/pascal/92/labeled.txt, check the dataset has its files
    python tools/dataset_converters/pascal_voc.py published 92 \
        --out data/splits --root data/VOCdevkit/VOC2012

``--split`` takes ``train``, ``val``, ``trainval`` (the official
``ImageSets/Segmentation`` lists; default ``trainval``), a published name
(``92``, ``183``, ``366``, ``732``, ``1464``, ``pascal/val``) or a split file.
``published --out DIR`` writes the list at ``DIR/pascal/<name>/labeled.txt``
(``DIR/pascal/val.txt``), the split cache's layout, so ``DIR`` can be given
to ``PascalVOCSplitDataset(splits_dir=DIR)``. Faults are printed one per line
and exit with status 2.
"""
import argparse
import os.path as osp
import sys

from mmsamptx.datasets.converter_cli import run_cli
from mmsamptx.datasets.pascal_voc import (VOC_CLASSES, VOC_URL, download_voc,
                                          find_voc_root, verify_voc)
from mmsamptx.datasets.published_splits import (fetch_published_split,
                                                get_published_split,
                                                resolve_published_name)
from mmsamptx.datasets.utils import format_histogram


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('download', help='fetch + unpack the official archive')
    p.add_argument('--out', default='data')
    p.add_argument('--url', default=VOC_URL)
    p = sub.add_parser('verify', help='check the files of a split')
    p.add_argument('root', help='VOCdevkit/VOC2012 (or VOCdevkit, or above)')
    p.add_argument('--split', default=None,
                   help='train, val, trainval, a published name or a file')
    p.add_argument('--expect', type=int, default=None,
                   help='number of complete image/label pairs expected')
    p.add_argument('--workers', type=int, default=0)
    p.add_argument('--splits-dir', default=None, help='split cache folder')
    p = sub.add_parser('published',
                       help="UniMatch's published list: fetch + verify")
    p.add_argument('name', help='92, 183, 366, 732, 1464 or val')
    p.add_argument('--out', default=None,
                   help='folder receiving pascal/<name>/labeled.txt')
    p.add_argument('--root', default=None,
                   help='VOC2012 folder whose files the list must name')
    p.add_argument('--splits-dir', default=None, help='split cache folder')
    p.add_argument('--base-url', default=None, help='download mirror')
    return run_cli(parser, run, argv)


def run(args):
    """Run the parsed sub-command; verification faults exit with status 2."""
    if args.cmd == 'download':
        print(download_voc(args.out, args.url))
    elif args.cmd == 'published':
        name = resolve_published_name(args.name, 'pascal')
        out = None
        if args.out:
            out = osp.join(args.out, *get_published_split(name).path.split('/'))
        root = find_voc_root(args.root) if args.root else None
        info = fetch_published_split(name, 'pascal', root, out,
                                     args.splits_dir, args.base_url)
        checked = f', every file present under {root}' if root else ''
        print(f'{info["name"]}: {info["lines"]} lines, sha256 ok{checked}: '
              f'{info["copy"] or info["path"]}')
    else:
        rep = verify_voc(args.root, args.split, args.expect, args.splits_dir,
                         args.workers)
        print(f'{rep["name"]} ({rep["split_file"]}): {rep["listed"]} listed, '
              f'{rep["images"]} images and {rep["labels"]} labels present '
              f'under {rep["root"]}')
        if rep['errors']:
            for line in rep['errors']:
                print(f'error: {line}', file=sys.stderr)
            raise SystemExit(2)
        print(format_histogram(VOC_CLASSES, rep['image_histogram'],
                               rep['pixel_histogram']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
