"""Prepare OrganoidBasic (OrgaSegment) for PTSAM: download, convert to binary masks, verify.

Usage::

    # Zenodo record 10278229, OrganoidBasic_v20211206.zip (sha256-checked; offline: the message
    # names the URL and where to place the zip, which is then unpacked)
    python tools/dataset_converters/organoid_basic.py download --out data/raw/organoid_basic
    # train / val / eval -> <out>/<split>/{images,masks}; instance maps -> 0/255 foreground
    python tools/dataset_converters/organoid_basic.py convert data/raw/organoid_basic \
        --out data/ptsam/organoid_basic
    python tools/dataset_converters/organoid_basic.py verify data/ptsam/organoid_basic
    # the seeded N-shot training list PTSAM trains on
    python tools/dataset_converters/ptsam_few_shot.py data/ptsam/organoid_basic --dataset organoid_basic \
        --num-shots 16 --seed 0

``convert`` writes ``<out>/<split>/images/<id>`` (the official file, copied) and
``<out>/<split>/masks/<id>.png`` (0/255) through ``atomic_write``; existing outputs are
kept on a re-run unless ``--overwrite``. ``verify`` checks each split: ids match, masks
are single-channel 0/255 of their image's size, counts equal the source's where it
publishes them. Faults are one ``error:`` line and exit with status 2.
"""
import argparse
import sys

from mmsamptx.datasets.organoid_basic import OrganoidBasicDataset, ORGANOID_EXPECTED
from mmsamptx.datasets.organoid_basic import (convert_organoid_basic,
                                              download_organoid_basic)
from mmsamptx.datasets.ptsam_binary import verify_split
from mmsamptx.datasets.utils import DatasetVerificationError, format_histogram

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = ORGANOID_EXPECTED


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('download', help='fetch + unpack the official files')
    p.add_argument('--out', required=True)
    p = sub.add_parser('convert', help='official layout -> binary layout')
    p.add_argument('raw',
                   help='the unpacked archive (OrganoidBasic_v20211206 or its parent)')
    p.add_argument('--out', required=True)
    p.add_argument('--overwrite', action='store_true')
    p = sub.add_parser('verify', help='check a converted dataset')
    p.add_argument('root')
    p.add_argument('--split', choices=OrganoidBasicDataset.SPLITS, default=None,
                   help='one split (default: all)')
    p.add_argument('--expect', type=int, default=None,
                   help='image count expected for --split')
    p.add_argument('--workers', type=int, default=0)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError, RuntimeError,
            DatasetVerificationError) as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


def run(args):
    """Run the parsed sub-command."""
    if args.cmd == 'download':
        print(f'ready: {download_organoid_basic(args.out)}')
    elif args.cmd == 'convert':
        counts = convert_organoid_basic(args.raw, args.out, args.overwrite)
        print(f'wrote {counts} image/mask pairs to {args.out}')
    else:
        if args.expect is not None and args.split is None:
            raise ValueError('--expect needs --split')
        splits = [args.split] if args.split else list(OrganoidBasicDataset.SPLITS)
        for split in splits:
            expected = args.expect if args.split else EXPECTED.get(split)
            rep = verify_split(args.root, split, OrganoidBasicDataset.IMG_SUFFIX,
                               expected, args.workers)
            print(f'{split}: {rep["num_images"]} pairs, '
                  f'{len(rep["images_without_labels"])} with an empty mask')
            print(format_histogram(OrganoidBasicDataset.METAINFO['classes'],
                                   rep['image_histogram'], rep['pixel_histogram']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
