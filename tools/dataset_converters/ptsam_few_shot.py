"""Write PTSAM's seeded N-shot training lists for a converted dataset.

Usage::

    # splits/train_16shot_seed0.txt under the dataset root (what the configs read)
    python tools/dataset_converters/ptsam_few_shot.py data/ptsam/livecell --dataset livecell \
        --num-shots 16 --seed 0
    # several N and seeds at once (1, 2, 4, 8, 16 shots x seeds 0..2)
    python tools/dataset_converters/ptsam_few_shot.py data/ptsam/kvasir_seg --dataset kvasir_seg \
        --num-shots 1 2 4 8 16 --seed 0 1 2

Each list holds ``seeded_subset(sorted ids of the split, N, seed)`` (numpy
``RandomState(seed)`` permutation, first N, written sorted), written
atomically to ``<root>/splits/<split>_<N>shot_seed<S>.txt``; the dataset
classes read it with ``num_shots=N, seed=S``. N larger than the split is one
``error:`` line and exit status 2.
"""
import argparse
import sys

from mmsamptx.datasets import (EMParticlesDataset, KvasirSEGDataset,
                               LIVECellDataset, OrganoidBasicDataset)
from mmsamptx.datasets.ptsam_binary import make_shots, shots_file

DATASETS = dict(organoid_basic=OrganoidBasicDataset,
                em_particles=EMParticlesDataset, livecell=LIVECellDataset,
                kvasir_seg=KvasirSEGDataset)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='converted dataset root')
    parser.add_argument('--dataset', required=True, choices=sorted(DATASETS))
    parser.add_argument('--num-shots', type=int, nargs='+', default=[16])
    parser.add_argument('--seed', type=int, nargs='+', default=[0])
    parser.add_argument('--split', default='train',
                        help='split the shots come from (default: train)')
    args = parser.parse_args(argv)
    cls = DATASETS[args.dataset]
    try:
        if args.split not in cls.SPLITS:
            raise ValueError(f'--split must be one of {tuple(cls.SPLITS)} for '
                             f'{args.dataset}, got {args.split!r}')
        for n in args.num_shots:
            for seed in args.seed:
                make_shots(args.root, args.split, n, seed, cls.IMG_SUFFIX)
                print(f'wrote {n} ids to '
                      f'{shots_file(args.root, args.split, n, seed)}')
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
