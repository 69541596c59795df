"""mmseg's ``Albu`` drawing its randomness from numpy's global generator."""
import random

import numpy as np
from mmseg.datasets.transforms import Albu
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class SeededAlbu(Albu):
    """``Albu`` whose albumentations draws follow the run's seed and differ per worker.

    albumentations 2.x keeps its own random generators, seeded from the operating
    system when the ``Compose`` is built, and ignores numpy's and Python's global
    state. Built once in the main process and forked into the data loader's
    workers, every worker then draws the same sequence of augmentations, and a
    run seeded through mmengine (``randomness=dict(seed=...)``) is not
    reproducible. Before each call this wrapper reseeds the ``Compose`` from
    ``np.random``, which mmengine seeds per rank and per worker (as mmcv's own
    random transforms, e.g. ``RandomFlip``, already rely on). One pair of
    generators is shared by all the wrapped transforms (``set_random_state``):
    ``Compose.set_random_seed`` would give each transform its own generator with
    the same seed, so that e.g. every transform's ``p`` test drew the same
    number. Everything else is mmseg's ``Albu``: ``img`` / ``gt_seg_map`` go to
    albumentations as ``image`` / ``mask``, and the image is handed over in RGB
    order (so colours given to albumentations, e.g. a fill, are RGB) and
    returned in BGR.
    """

    def transform(self, results: dict) -> dict:
        seed = int(np.random.randint(0, 2**31 - 1))
        self.aug.set_random_state(np.random.default_rng(seed), random.Random(seed))
        return super().transform(results)
