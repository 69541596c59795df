"""Few-shot binary segmentation (microscopy / medical): N labelled shots, rest held out."""
import os
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .utils import list_files, read_image_checked, seeded_subset, write_png


def folder_pairs(img_dir: str, mask_dir: str, img_suffix: str,
                 mask_suffix: str) -> List[Tuple[str, str, str]]:
    """Match ``images/*`` and ``masks/*`` by file stem.

    Returns sorted ``(stem, image path, mask path)``; stems present on one
    side only raise ``ValueError`` naming them.
    """
    imgs = {n[:-len(img_suffix)]: n for n in list_files(img_dir, img_suffix)}
    masks = {n[:-len(mask_suffix)]: n
             for n in list_files(mask_dir, mask_suffix)}
    no_mask = sorted(set(imgs) - set(masks))
    no_img = sorted(set(masks) - set(imgs))
    if no_mask or no_img:
        raise ValueError(
            f'images in {img_dir} and masks in {mask_dir} do not match by '
            f'stem: images without mask {no_mask[:20]}, masks without image '
            f'{no_img[:20]}')
    return [(s, osp.join(img_dir, imgs[s]), osp.join(mask_dir, masks[s]))
            for s in sorted(imgs)]


def dsb2018_union_mask(sample_dir: str) -> np.ndarray:
    """Union of a DSB 2018 sample's per-nucleus masks as a 0/255 uint8 map."""
    sid = osp.basename(osp.normpath(sample_dir))
    mask_dir = osp.join(sample_dir, 'masks')
    names = list_files(mask_dir, '.png') if osp.isdir(mask_dir) else []
    if not names:
        raise FileNotFoundError(f'DSB 2018 sample {sid}: no mask PNG in '
                                f'{mask_dir}')
    union = None
    for n in names:
        m = read_image_checked(osp.join(mask_dir, n), 'mask')
        if m.ndim == 3:
            m = m[..., 0]
        if union is None:
            union = np.zeros(m.shape, bool)
        elif m.shape != union.shape:
            raise ValueError(f'mask {osp.join(mask_dir, n)} is {m.shape} but '
                             f'other masks of {sid} are {union.shape}')
        union |= m > 0
    return union.astype(np.uint8) * 255


def dsb2018_pairs(stage_dir: str, union_dir: str,
                  write_missing: bool = True) -> List[Tuple[str, str, str]]:
    """List ``stage1_train/<id>/images/<id>.png`` with their union masks.

    Union masks are read from (and, if missing, written atomically to)
    ``union_dir/<id>.png``. Returns sorted ``(id, image path, mask path)``.
    """
    if not osp.isdir(stage_dir):
        raise FileNotFoundError(f'DSB 2018 folder {stage_dir} does not exist')
    out = []
    for sid in sorted(os.listdir(stage_dir)):
        sample_dir = osp.join(stage_dir, sid)
        if not osp.isdir(sample_dir) or sid.startswith('.'):
            continue
        img = osp.join(sample_dir, 'images', sid + '.png')
        if not osp.isfile(img):
            raise FileNotFoundError(f'DSB 2018 sample {sid}: image {img} '
                                    'does not exist')
        mask = osp.join(union_dir, sid + '.png')
        if not osp.isfile(mask):
            if not write_missing:
                raise FileNotFoundError(f'union mask {mask} does not exist')
            write_png(mask, dsb2018_union_mask(sample_dir))
        out.append((sid, img, mask))
    return out


@DATASETS.register_module()
class FewShotBinaryDataset(BaseSegDataset):
    """N-shot binary segmentation with the remaining images held out.

    Two layouts (``layout``):

    - ``'folder'``: ``<data_root>/images/<stem><img_suffix>`` and
      ``<data_root>/masks/<stem><seg_map_suffix>`` (folders set by
      ``data_prefix``), matched by stem; unmatched stems raise naming them.
    - ``'dsb2018'``: the 2018 Data Science Bowl ``stage1_train`` folder as
      ``data_root`` (``<id>/images/<id>.png`` + ``<id>/masks/*.png``, one PNG
      per nucleus). The union of the instance masks is written once
      (atomically) to ``union_mask_dir/<id>.png`` (default: a
      ``stage1_train_union`` folder beside ``data_root``) so that mmseg's
      ``LoadAnnotations`` reads it.

    Masks are 0/255 or 0/1; ``label_map={255: 1}`` yields 0 = background,
    1 = ``class_name``. The ``split='train'`` part holds ``num_shots`` ids drawn
    by ``seeded_subset(sorted stems, num_shots, seed)``; ``split='test'`` the
    rest; ``split='all'`` every image. Each data info carries ``class_name``.

    Args:
        layout (str): ``'folder'`` or ``'dsb2018'``. Defaults to 'folder'.
        split (str): ``'train'``, ``'test'`` or ``'all'``. Defaults to 'train'.
        num_shots (int): Labelled training images. Defaults to 16.
        seed (int): Seed of the shot selection. Defaults to 0.
        class_name (str): Name of the foreground class. Defaults to
            'foreground' (``'nucleus'`` suits DSB 2018).
        union_mask_dir (str, optional): Where DSB 2018 union masks go.
    """

    METAINFO = dict(classes=('background', 'foreground'),
                    palette=[[0, 0, 0], [255, 255, 255]])
    LAYOUTS = ('folder', 'dsb2018')
    SPLITS = ('train', 'test', 'all')

    def __init__(self,
                 layout: str = 'folder',
                 split: str = 'train',
                 num_shots: int = 16,
                 seed: int = 0,
                 class_name: str = 'foreground',
                 union_mask_dir: Optional[str] = None,
                 img_suffix: str = '.png',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(img_path='images',
                                          seg_map_path='masks'),
                 **kwargs) -> None:
        if layout not in self.LAYOUTS:
            raise ValueError(f'layout must be one of {self.LAYOUTS}, got '
                             f'{layout!r}')
        if split not in self.SPLITS:
            raise ValueError(f'split must be one of {self.SPLITS}, got '
                             f'{split!r}')
        if num_shots < 1:
            raise ValueError(f'num_shots must be >= 1, got {num_shots}')
        self.layout = layout
        self.split = split
        self.num_shots = num_shots
        self.seed = seed
        self.class_name = class_name
        self.union_mask_dir = union_mask_dir
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            reduce_zero_label=False,
            **kwargs)

    def _pairs(self):
        if self.layout == 'folder':
            return folder_pairs(self.data_prefix['img_path'],
                                self.data_prefix['seg_map_path'],
                                self.img_suffix, self.seg_map_suffix)
        stage_dir = self.data_root or ''
        union_dir = self.union_mask_dir or osp.join(
            osp.dirname(osp.normpath(stage_dir)),
            osp.basename(osp.normpath(stage_dir)) + '_union')
        return dsb2018_pairs(stage_dir, union_dir)

    def load_data_list(self) -> List[dict]:
        """Pick the shots (or the held-out rest) and build data infos."""
        pairs = self._pairs()
        if not pairs:
            raise ValueError(f'FewShotBinaryDataset is empty: no image found '
                             f'(layout={self.layout!r}, '
                             f'data_root={self.data_root!r})')
        stems = [p[0] for p in pairs]
        if self.split != 'all':
            if self.num_shots >= len(stems):
                raise ValueError(
                    f'num_shots={self.num_shots} leaves no held-out image: '
                    f'only {len(stems)} images found')
            shots = set(seeded_subset(stems, self.num_shots, self.seed))
            keep = shots if self.split == 'train' else set(stems) - shots
            pairs = [p for p in pairs if p[0] in keep]
        return [
            dict(img_path=img, seg_map_path=mask, label_map={255: 1},
                 reduce_zero_label=False, seg_fields=[],
                 class_name=self.class_name, sample_id=stem)
            for stem, img, mask in pairs
        ]
