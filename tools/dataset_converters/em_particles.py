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

What ``convert`` writes, what ``verify`` checks, how faults exit: the docstring of
``mmsamptx/datasets/converter_cli.py``.
"""
import sys

from mmsamptx.datasets.converter_cli import ptsam_converter_main
from mmsamptx.datasets.em_particles import (EMPS_EXPECTED, EMParticlesDataset,
                                            convert_emps, download_emps)

# Images per split that the source publishes (verify checks them; {} = not published).
EXPECTED = EMPS_EXPECTED


def convert(args):
    """``convert``: the official layout -> the binary layout; pairs written."""
    return convert_emps(args.raw, args.out, args.overwrite)


def main(argv=None):
    return ptsam_converter_main(
        argv, __doc__, EMParticlesDataset, EXPECTED, download=download_emps,
        convert=convert,
        raw_help='the EMPS repository (images/, segmaps/, train.csv, test.csv)')


if __name__ == '__main__':
    sys.exit(main())
