"""Prepare Kvasir-SEG for PTSAM: download, threshold the JPEG masks, verify.

Usage::

    # kvasir-seg.zip and the dataset authors' 880/120 train/val lists (sha256-checked)
    python tools/dataset_converters/kvasir_seg.py download --out data/raw/kvasir_seg
    # train.txt / val.txt -> <out>/<split>/{images,masks}; JPEG masks thresholded at 128
    python tools/dataset_converters/kvasir_seg.py convert data/raw/kvasir_seg --out data/ptsam/kvasir_seg
    python tools/dataset_converters/kvasir_seg.py verify data/ptsam/kvasir_seg
    # the seeded N-shot training list PTSAM trains on
    python tools/dataset_converters/ptsam_few_shot.py data/ptsam/kvasir_seg --dataset kvasir_seg \
        --num-shots 16 --seed 0

``convert`` writes ``<out>/<split>/images/<id>`` (the official file, copied) and
``<out>/<split>/masks/<id>.png`` (0/255) through ``atomic_write``; existing outputs are
kept on a re-run unless ``--overwrite``. ``verify`` checks each split: ids match, masks
are single-channel 0/255 of their image's size, counts equal the source's where it
publishes them. Faults are one ``error:`` line and exit with status 2.
"""
import argparse
import sys

from mmsamptx.datasets.kvasir_seg import KvasirSEGDataset, KVASIR_EXPECTED
from mmsamptx.datasets.kvasir_seg import convert_kvasir, download_kvasir
from mmsamptx.datasets.ptsam_binary import verify_split
from mmsamptx.datasets.utils import DatasetVerificationError, format_histogram

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = KVASIR_EXPECTED


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('download', help='fetch + unpack the official files')
    p.add_argument('--out', required=True)
    p = sub.add_parser('convert', help='official layout -> binary layout')
    p.add_argument('raw', help='the unpacked archive (Kvasir-SEG or its parent)')
    p.add_argument('--out', required=True)
    p.add_argument('--split-dir', default=None,
                   help='folder with train.txt / val.txt (default: beside the images)')
    p.add_argument('--overwrite', action='store_true')
    p = sub.add_parser('verify', help='check a converted dataset')
    p.add_argument('root')
    p.add_argument('--split', choices=KvasirSEGDataset.SPLITS, default=None,
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
        print(f'ready: {download_kvasir(args.out)}')
    elif args.cmd == 'convert':
        counts = convert_kvasir(args.raw, args.out, args.split_dir, args.overwrite)
        print(f'wrote {counts} image/mask pairs to {args.out}')
    else:
        if args.expect is not None and args.split is None:
            raise ValueError('--expect needs --split')
        splits = [args.split] if args.split else list(KvasirSEGDataset.SPLITS)
        for split in splits:
            expected = args.expect if args.split else EXPECTED.get(split)
            rep = verify_split(args.root, split, KvasirSEGDataset.IMG_SUFFIX,
                               expected, args.workers)
            print(f'{split}: {rep["num_images"]} pairs, '
                  f'{len(rep["images_without_labels"])} with an empty mask')
            print(format_histogram(KvasirSEGDataset.METAINFO['classes'],
                                   rep['image_histogram'], rep['pixel_histogram']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
