"""Pack an image with several referring expressions and their (E, H, W) masks."""
import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackReferringInputs(PackSegInputs):
    """mmseg's ``PackSegInputs`` for E masks per image: ``gt_sem_seg`` is (E, H, W).

    The image is packed as ``PackSegInputs`` does (uint8 (3, H, W)); the
    expressions travel in the metainfo (``expressions`` is in the default
    ``meta_keys``).
    """

    def __init__(self, meta_keys=('img_path', 'ori_shape', 'img_shape', 'expressions', 'ref_ids',
                                  'sent_ids', 'ann_ids', 'image_id')) -> None:
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        masks = results.pop('gt_seg_map', None)
        packed = super().transform(results)
        if masks is not None:
            masks = masks if masks.ndim == 3 else masks[None]
            packed['data_samples'].gt_sem_seg = PixelData(
                data=torch.from_numpy(np.ascontiguousarray(masks).astype(np.int64)))
        return packed
