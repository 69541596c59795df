"""A generated dataset in ADE20K's on-disk layout on which one point prompt is ambiguous.

Each image shows one uniformly textured blob on a textured wall: the union of
a disc (class ``plate``) and an overlapping square (class ``tray``), painted in
the *same* colour, so no edge separates them. A point on the blob does not
say whether the disc or the square is meant; the class name does. Labels
are ADE20K's own values for these classes (0 = unlabelled, class i of
ADE20K's 150 stored as i + 1; loaded with ``reduce_zero_label=True``), so a
config that narrows the class list through ``metainfo`` gets mmseg's label
map from ADE20K ids to 0, 1, 2.
"""
import io
import os.path as osp
from typing import Tuple

import numpy as np
from PIL import Image

from ..utils import atomic_write

#: Classes in label order.
AMBIGUOUS_CLASSES = ('wall', 'plate', 'tray')
#: Their values in ADE20K annotation PNGs (ADE20K class index + 1).
ADE_VALUES = dict(wall=1, plate=143, tray=138)


def _texture(rng: np.random.Generator, size: int, colour: np.ndarray, amp: float) -> np.ndarray:
    """(size, size, 3) uint8: a colour with smooth noise."""
    coarse = rng.normal(0, 1, (size // 8 + 1, size // 8 + 1, 3))
    noise = np.kron(coarse, np.ones((8, 8, 1)))[:size, :size]
    return np.clip(colour + amp * noise + rng.normal(0, 6, (size, size, 3)), 0, 255)


def _sample(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """One (image RGB uint8, label uint8) pair."""
    yy, xx = np.mgrid[0:size, 0:size]
    wall = _texture(rng, size, rng.uniform(40, 200, 3), 25)
    r = rng.uniform(0.14, 0.22) * size                  # disc radius
    half = rng.uniform(0.14, 0.22) * size               # half side of the square
    cx, cy = rng.uniform(0.3, 0.7, 2) * size
    angle = rng.uniform(0, 2 * np.pi)
    dist = rng.uniform(0.9, 1.3) * max(r, half)         # overlap, but never one inside the other
    sx, sy = cx + dist * np.cos(angle), cy + dist * np.sin(angle)
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r ** 2
    square = (np.abs(xx - sx) <= half) & (np.abs(yy - sy) <= half)
    blob_colour = rng.uniform(40, 220, 3)
    while np.abs(blob_colour - wall.mean((0, 1))).max() < 60:
        blob_colour = rng.uniform(40, 220, 3)
    blob = _texture(rng, size, blob_colour, 12)
    union = disc | square
    image = np.where(union[..., None], blob, wall).astype(np.uint8)
    label = np.full((size, size), ADE_VALUES['wall'], np.uint8)
    label[square] = ADE_VALUES['tray']
    label[disc] = ADE_VALUES['plate']                     # drawn on top
    return image, label


def _write(path: str, array: np.ndarray, fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def make_ambiguous_shapes(root: str, num_train: int = 64, num_val: int = 24, size: int = 128,
                          seed: int = 0) -> str:
    """Write ``root/ADEChallengeData2016`` with ``images/`` and ``annotations/`` (training, validation).

    Idempotent: an existing file is kept. Returns the dataset root.
    """
    data_root = osp.join(root, 'ADEChallengeData2016')
    rng = np.random.default_rng(seed)
    for subset, prefix, count in (('training', 'ADE_train', num_train),
                                  ('validation', 'ADE_val', num_val)):
        for i in range(1, count + 1):
            image, label = _sample(rng, size)
            stem = f'{prefix}_{i:08d}'
            img_path = osp.join(data_root, 'images', subset, stem + '.jpg')
            ann_path = osp.join(data_root, 'annotations', subset, stem + '.png')
            if not osp.isfile(img_path):
                _write(img_path, image, 'JPEG')
            if not osp.isfile(ann_path):
                _write(ann_path, label, 'PNG')
    return data_root
