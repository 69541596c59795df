"""A generated dataset in ADE20K's on-disk layout where a class is a colour word and moves around.

Each image shows two or three shapes (discs or squares of random size) at
random places on a textured, unsaturated wall. Every shape is painted in one
of the class colours (``red``, ``green``, ``blue``), with a little jitter of
shade, so a class is recognisable from its appearance alone, but where it is
changes from image to image: a model told only the class name has to find it.
This is the task of CLIP-Guided SAM's learning test, where a small CLIP
trained on these images says where each colour is.

Labels are written as in ADE20K's PNGs: 0 = unlabelled (the wall), class i of
:data:`COLOUR_CLASSES` stored as i + 1, to be read with
``reduce_zero_label=True`` by a dataset whose ``metainfo`` lists the classes
(``BaseSegDataset``; ADE20K's own class list does not hold colour names).
"""
import io
import os.path as osp
from typing import Tuple

import numpy as np
from PIL import Image

from ..utils import atomic_write

#: Classes in label order (label value i + 1 in the PNGs).
COLOUR_CLASSES = ('red', 'green', 'blue')
#: RGB of each class before jitter.
_COLOURS = np.array([[205, 45, 40], [45, 170, 60], [45, 70, 205]], np.float64)
#: RGB of each class's look-alike (orange, teal, violet): a near hue, never labelled.
_LOOKALIKES = np.array([[215, 105, 40], [45, 165, 130], [110, 60, 205]], np.float64)


def _texture(rng: np.random.Generator, size: int, colour: np.ndarray, amp: float) -> np.ndarray:
    """(size, size, 3) float: a colour with smooth noise shared by the channels plus grain."""
    coarse = rng.normal(0, 1, (size // 8 + 1, size // 8 + 1, 1))
    noise = np.kron(coarse, np.ones((8, 8, 1)))[:size, :size]
    return colour + amp * noise + rng.normal(0, 5, (size, size, 3))


def _shape(rng: np.random.Generator, size: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """(size, size) bool: a disc or a square of random size at a random place."""
    half = rng.uniform(0.09, 0.15) * size  # radius of a disc, half side of a square
    cx, cy = rng.uniform(half, size - half, 2)
    if rng.random() < 0.5:
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= half ** 2
    return (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)


def colour_shapes_sample(rng: np.random.Generator, size: int = 128,
                         lookalikes: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """One (image (size, size, 3) uint8 RGB, label (size, size) uint8) pair.

    ``lookalikes`` > 0 first paints that many unlabelled shapes (label 0, the
    wall's) in the look-alike hue of a class the image holds (orange for
    ``red``, teal for ``green``, violet for ``blue``), beneath the labelled
    shapes: a coarse or imperfect CLIP confuses them with the class. 0 (the
    default) draws exactly what earlier versions drew.
    """
    yy, xx = np.mgrid[0:size, 0:size]
    grey = rng.uniform(70, 190)
    wall = _texture(rng, size, grey + rng.uniform(-12, 12, 3), 14)  # unsaturated
    image = wall
    label = np.zeros((size, size), np.uint8)
    classes = rng.permutation(len(COLOUR_CLASSES))[:rng.integers(2, len(COLOUR_CLASSES) + 1)]
    for _ in range(lookalikes):
        shape = _shape(rng, size, yy, xx)
        base = _LOOKALIKES[classes[rng.integers(len(classes))]]
        colour = np.clip(base * rng.uniform(0.8, 1.1) + rng.normal(0, 8, 3), 0, 255)
        image = np.where(shape[..., None], _texture(rng, size, colour, 8), image)
    for c in classes:
        shape = _shape(rng, size, yy, xx)
        colour = np.clip(_COLOURS[c] * rng.uniform(0.8, 1.1) + rng.normal(0, 8, 3), 0, 255)
        image = np.where(shape[..., None], _texture(rng, size, colour, 8), image)
        label[shape] = c + 1  # drawn later: on top
    return np.clip(image, 0, 255).astype(np.uint8), label


def _write(path: str, array: np.ndarray, fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def make_colour_shapes(root: str, num_train: int = 48, num_val: int = 16, size: int = 128,
                       seed: int = 0, lookalikes: int = 0) -> str:
    """Write ``root/ADEChallengeData2016`` with ``images/`` and ``annotations/`` (training, validation).

    ``lookalikes``: unlabelled near-hue shapes per image (:func:`colour_shapes_sample`).
    Idempotent: an existing file is kept. Returns the dataset root.
    """
    data_root = osp.join(root, 'ADEChallengeData2016')
    rng = np.random.default_rng(seed)
    for subset, prefix, count in (('training', 'ADE_train', num_train),
                                  ('validation', 'ADE_val', num_val)):
        for i in range(1, count + 1):
            image, label = colour_shapes_sample(rng, size, lookalikes)
            stem = f'{prefix}_{i:08d}'
            img_path = osp.join(data_root, 'images', subset, stem + '.jpg')
            ann_path = osp.join(data_root, 'annotations', subset, stem + '.png')
            if not osp.isfile(img_path):
                _write(img_path, image, 'JPEG')
            if not osp.isfile(ann_path):
                _write(ann_path, label, 'PNG')
    return data_root
