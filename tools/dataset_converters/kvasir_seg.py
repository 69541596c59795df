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

What ``convert`` writes, what ``verify`` checks, how faults exit: the docstring of
``mmsamptx/datasets/converter_cli.py``.
"""
import sys

from mmsamptx.datasets.converter_cli import ptsam_converter_main
from mmsamptx.datasets.kvasir_seg import (KVASIR_EXPECTED, KvasirSEGDataset,
                                          convert_kvasir, download_kvasir)

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = KVASIR_EXPECTED


def convert(args):
    """``convert``: the official layout -> the binary layout; pairs written."""
    return convert_kvasir(args.raw, args.out, args.split_dir, args.overwrite)


def main(argv=None):
    return ptsam_converter_main(
        argv, __doc__, KvasirSEGDataset, EXPECTED, download=download_kvasir,
        convert=convert,
        raw_help='the unpacked archive (Kvasir-SEG or its parent)',
        convert_options=[(('--split-dir',), dict(
            default=None,
            help='folder with train.txt / val.txt (default: beside the images)'))])


if __name__ == '__main__':
    sys.exit(main())
