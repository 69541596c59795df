"""Prepare EMParticles (EMPS) for PTSAM: download, convert to binary masks, verify.

Usage::

    # github.com/by256/emps at the snapshot read for this library (or: git clone it yourself)
    python tools/dataset_converters/em_particles.py download --out data/raw/emps
    # train.csv (366) / test.csv (99) -> <out>/<split>/{images,masks}; 16-bit instances -> 0/255
    python tools/dataset_converters/em_particles.py convert data/raw/emps --out data/ptsam/em_particles
    python tools/dataset_converters/em_particles.py verify data/ptsam/em_particles
    # the seeded N-shot training list PTSAM trains on
    python tools/dataset_converters/ptsam_few_shot.py data/ptsam/em_particles --dataset em_particles \
        --num-shots 16 --seed 0

``convert`` writes ``<out>/<split>/images/<id>`` (the official file, copied) and
``<out>/<split>/masks/<id>.png`` (0/255) through ``atomic_write``; existing outputs are
kept on a re-run unless ``--overwrite``. ``verify`` checks each split: ids match, masks
are single-channel 0/255 of their image's size, counts equal the source's where it
publishes them. Faults are one ``error:`` line and exit with status 2.
"""
import argparse
import sys

from mmsamptx.datasets.em_particles import EMParticlesDataset, EMPS_EXPECTED
from mmsamptx.datasets.em_particles import convert_emps, download_emps
from mmsamptx.datasets.ptsam_binary import verify_split
from mmsamptx.datasets.utils import DatasetVerificationError, format_histogram

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = EMPS_EXPECTED


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('download', help='fetch + unpack the official files')
    p.add_argument('--out', required=True)
    p = sub.add_parser('convert', help='official layout -> binary layout')
    p.add_argument('raw',
                   help='the EMPS repository (images/, segmaps/, train.csv, test.csv)')
    p.add_argument('--out', required=True)
    p.add_argument('--overwrite', action='store_true')
    p = sub.add_parser('verify', help='check a converted dataset')
    p.add_argument('root')
    p.add_argument('--split', choices=EMParticlesDataset.SPLITS, default=None,
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
        print(f'ready: {download_emps(args.out)}')
    elif args.cmd == 'convert':
        counts = convert_emps(args.raw, args.out, args.overwrite)
        print(f'wrote {counts} image/mask pairs to {args.out}')
    else:
        if args.expect is not None and args.split is None:
            raise ValueError('--expect needs --split')
        splits = [args.split] if args.split else list(EMParticlesDataset.SPLITS)
        for split in splits:
            expected = args.expect if args.split else EXPECTED.get(split)
            rep = verify_split(args.root, split, EMParticlesDataset.IMG_SUFFIX,
                               expected, args.workers)
            print(f'{split}: {rep["num_images"]} pairs, '
                  f'{len(rep["images_without_labels"])} with an empty mask')
            print(format_histogram(EMParticlesDataset.METAINFO['classes'],
                                   rep['image_histogram'], rep['pixel_histogram']))
    return 0


if __name__ == '__main__':
    sys.exit(main())
