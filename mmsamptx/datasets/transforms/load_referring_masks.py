"""Load the masks of an image's referring expressions (and draw a few of them in training)."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from ..utils import read_image_checked


@TRANSFORMS.register_module()
class LoadReferringMasks(BaseTransform):
    """Read ``seg_map_paths`` into ``gt_seg_map`` (E, H, W) uint8, one mask per expression.

    Works on the per-image data infos of ``RefCOCODataset(group_by='image')``.
    With ``max_expressions`` set, up to that many expressions are drawn without
    replacement (numpy's global generator, which mmengine seeds), as EVF-SAM's
    training data (LISA's ``num_classes_per_sample=3``); the list-valued fields
    (``expressions``, ``ref_ids``, ``ann_ids``, ``sent_ids``, ``class_names``)
    follow the draw. Without it every expression is kept, in order (testing).

    Masks of one expression's ref are read once per call however many of its
    sentences are kept.

    Args:
        max_expressions: expressions kept per image; None keeps all.
    """

    LIST_FIELDS = ('expressions', 'seg_map_paths', 'ref_ids', 'ann_ids', 'sent_ids', 'class_names')

    def __init__(self, max_expressions: Optional[int] = None) -> None:
        if max_expressions is not None and (not isinstance(max_expressions, int) or max_expressions < 1):
            raise ValueError(f'max_expressions must be a positive int or None, got {max_expressions!r}')
        self.max_expressions = max_expressions

    def transform(self, results: dict) -> dict:
        paths = results.get('seg_map_paths')
        if not paths:
            raise KeyError(f'{results.get("img_path", "?")}: LoadReferringMasks needs the per-image '
                           "seg_map_paths of RefCOCODataset(group_by='image')")
        keep = np.arange(len(paths))
        if self.max_expressions is not None and len(paths) > self.max_expressions:
            keep = np.sort(np.random.choice(len(paths), self.max_expressions, replace=False))
        for key in self.LIST_FIELDS:
            if key in results:
                results[key] = [results[key][i] for i in keep]
        cache = {}
        for path in results['seg_map_paths']:
            if path not in cache:
                cache[path] = read_image_checked(path, 'referring mask')
        masks = np.stack([cache[p] for p in results['seg_map_paths']]).astype(np.uint8)
        shape = results.get('ori_shape', results.get('img_shape'))
        if shape is not None and tuple(masks.shape[1:]) != tuple(shape[:2]):
            raise ValueError(f'mask {results["seg_map_paths"][0]} is {tuple(masks.shape[1:])}, its '
                             f'image {results.get("img_path", "?")} {tuple(shape[:2])}')
        results['gt_seg_map'] = masks
        results.setdefault('seg_fields', []).append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(max_expressions={self.max_expressions})'
