"""Reproducible point prompts sampled from a binary ground-truth mask."""
import zlib

import torch


class PointSampler:
    """Sample ``num_points`` positive points uniformly from a mask's pixels.

    Training draws from a generator the segmentor owns (seeded once); testing
    derives one generator per (image, class) from ``seed`` and a key, so the
    same image and class always get the same points, in any order and on any
    number of processes.
    """

    def __init__(self, num_points: int = 1, seed: int = 0) -> None:
        if num_points < 1:
            raise ValueError(f'num_points must be at least 1, got {num_points}')
        self.num_points = num_points
        self.seed = seed

    def generator_for(self, key: str) -> torch.Generator:
        """A CPU generator determined by ``seed`` and ``key`` (e.g. ``'img.jpg:12'``)."""
        return torch.Generator().manual_seed(zlib.crc32(f'{self.seed}:{key}'.encode()))

    def sample(self, mask: torch.Tensor, generator: torch.Generator, what: str = 'mask',
               stride: int = 1) -> torch.Tensor:
        """mask: (H, W) bool -> (num_points, 2) float (x, y) pixel coordinates.

        Points are drawn uniformly *with replacement* from the mask's pixels
        (the authors' sampler: 5 draws may repeat a pixel). With ``stride`` s > 1
        the mask is a coarse grid (e.g. the 256² target of a 1024² input, s = 4)
        and each draw is a uniform pixel of the nearest-upsampled mask, i.e. a
        coarse cell plus an offset in [0, s) on each axis; coordinates are then
        in the fine (input) pixels. An empty mask has no point to give:
        ``ValueError`` naming ``what``.
        """
        ys, xs = torch.nonzero(mask, as_tuple=True)
        if ys.numel() == 0:
            raise ValueError(f'cannot sample point prompts: {what} has no pixels')
        idx = torch.randint(ys.numel(), (self.num_points,), generator=generator).to(ys.device)
        xy = torch.stack([xs[idx], ys[idx]], dim=-1)
        if stride > 1:
            offset = torch.randint(stride, (self.num_points, 2), generator=generator).to(ys.device)
            xy = xy * stride + offset
        return xy.float()
