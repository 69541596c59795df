"""Prepare LIVECell for PTSAM: download, COCO instances to binary masks, verify.

Usage::

    # images.zip + livecell_coco_{train,val,test}.json from the project's S3 bucket
    python tools/dataset_converters/livecell.py download --out data/raw/livecell
    # every image each COCO file lists -> <out>/<split>/{images,masks}, instances merged with
    # pycocotools; a file list that disagrees with the images is refused, naming them
    python tools/dataset_converters/livecell.py convert data/raw/livecell --out data/ptsam/livecell
    python tools/dataset_converters/livecell.py verify data/ptsam/livecell
    # the seeded N-shot training list PTSAM trains on
    python tools/dataset_converters/ptsam_few_shot.py data/ptsam/livecell --dataset livecell \
        --num-shots 16 --seed 0

What ``convert`` writes, what ``verify`` checks, how faults exit: the docstring of
``mmsamptx/datasets/converter_cli.py``.
"""
import sys

from mmsamptx.datasets.converter_cli import ptsam_converter_main
from mmsamptx.datasets.livecell import (LIVECELL_EXPECTED, LIVECellDataset,
                                        convert_livecell, download_livecell)

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = LIVECELL_EXPECTED


def convert(args):
    """``convert``: the official layout -> the binary layout; pairs written."""
    return convert_livecell(args.raw, args.out, overwrite=args.overwrite)


def main(argv=None):
    return ptsam_converter_main(
        argv, __doc__, LIVECellDataset, EXPECTED, download=download_livecell,
        convert=convert,
        raw_help='folder with images/ and annotations/LIVECell/')


if __name__ == '__main__':
    sys.exit(main())
