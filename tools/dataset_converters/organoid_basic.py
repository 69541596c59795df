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

What ``convert`` writes, what ``verify`` checks, how faults exit: the docstring of
``mmsamptx/datasets/converter_cli.py``.
"""
import sys

from mmsamptx.datasets.converter_cli import ptsam_converter_main
from mmsamptx.datasets.organoid_basic import (ORGANOID_EXPECTED,
                                              OrganoidBasicDataset,
                                              convert_organoid_basic,
                                              download_organoid_basic)

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = ORGANOID_EXPECTED


def convert(args):
    """``convert``: the official layout -> the binary layout; pairs written."""
    return convert_organoid_basic(args.raw, args.out, args.overwrite)


def main(argv=None):
    return ptsam_converter_main(
        argv, __doc__, OrganoidBasicDataset, EXPECTED, download=download_organoid_basic,
        convert=convert,
        raw_help='the unpacked archive (OrganoidBasic_v20211206 or its parent)')


if __name__ == '__main__':
    sys.exit(main())
