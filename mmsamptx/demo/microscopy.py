"""A generated microscopy-like binary task in :class:`FewShotBinaryDataset`'s folder layout.

Each image shows a few textured cells (ellipses of speckled, brighter
cytoplasm with a darker nucleus) on a textured background (smooth
illumination, fine grain and faint fibres). The mask is the union of the
cells: ``masks/<stem>.png`` with 0 = background, 255 = cell, beside
``images/<stem>.png``. SAM prompted by nothing does not know that cells are
the target; prompt tokens trained on a few images learn it.
"""
import io
import os.path as osp
from typing import Tuple

import numpy as np
from PIL import Image

from ..utils import atomic_write


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """(size, size) noise of unit scale, smooth over ``cell`` pixels (bilinear upsampling)."""
    n = size // cell + 2
    coarse = rng.normal(0, 1, (n, n))
    img = Image.fromarray(coarse.astype(np.float32), mode='F').resize(
        ((n - 1) * cell, (n - 1) * cell), Image.BILINEAR)
    return np.asarray(img)[:size, :size]


def microscopy_sample(rng: np.random.Generator, size: int = 128) -> Tuple[np.ndarray, np.ndarray]:
    """One (image (size, size, 3) uint8 RGB, mask (size, size) uint8 0/255) pair."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Background: uneven illumination, grain and faint fibres at a random angle.
    angle = rng.uniform(0, np.pi)
    fibres = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * rng.uniform(0.5, 0.9))
    bg = (rng.uniform(55, 85) + 14 * _smooth_noise(rng, size, 32) + 8 * fibres
          + 10 * _smooth_noise(rng, size, 4) + rng.normal(0, 6, (size, size)))
    mask = np.zeros((size, size), bool)
    nucleus = np.zeros((size, size), bool)
    for _ in range(rng.integers(2, 6)):
        cx, cy = rng.uniform(0.12, 0.88, 2) * size
        a, b = rng.uniform(0.07, 0.15, 2) * size
        t = rng.uniform(0, np.pi)
        u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
        v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        wobble = 1 + 0.12 * np.sin(3 * np.arctan2(v, u) + rng.uniform(0, 2 * np.pi))
        r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        mask |= r <= wobble
        nucleus |= r <= 0.45 * wobble
    cyto = (rng.uniform(130, 165) + 12 * _smooth_noise(rng, size, 6)
            + rng.normal(0, 14, (size, size)))                      # speckled cytoplasm
    img = np.where(mask, cyto, bg)
    img = np.where(nucleus, img - rng.uniform(35, 55), img)
    tint = np.array([0.85, 1.0, 0.9]) * rng.uniform(0.95, 1.05, 3)  # a greenish stain
    rgb = np.clip(img[..., None] * tint, 0, 255).astype(np.uint8)
    return rgb, mask.astype(np.uint8) * 255


def _write_png(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format='PNG')
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def make_microscopy(root: str, num_images: int = 40, size: int = 128, seed: int = 0) -> str:
    """Write ``root/images/cell_XXXX.png`` and ``root/masks/cell_XXXX.png``; return ``root``.

    Use it as ``FewShotBinaryDataset(data_root=root, num_shots=16, split=...)``:
    16 training shots, the rest held out. Idempotent: existing files are kept.
    """
    if num_images < 2:
        raise ValueError(f'num_images must be at least 2 (shots + held out), got {num_images}')
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        image, mask = microscopy_sample(rng, size)
        stem = f'cell_{i:04d}'
        for folder, array in (('images', image), ('masks', mask)):
            path = osp.join(root, folder, stem + '.png')
            if not osp.isfile(path):
                _write_png(path, array)
    return root
