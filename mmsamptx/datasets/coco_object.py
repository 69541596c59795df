"""COCO object (background + 80 thing classes) semantic segmentation."""
import os.path as osp
from typing import List, Optional

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .published_splits import published_split_path
from .utils import data_list_from_split

COCO_CLASSES = (
    'background', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
    'train', 'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')

# COCO category ids of the 80 thing classes, in label order 1..80.
COCO_CATEGORY_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
    65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88,
    89, 90)


_MASK_HINT = ('UniMatch lines name masks/<id>.png: use UniMatch\'s masks or '
              'tools/dataset_converters/coco_object.py convert --layout '
              'unimatch')


@DATASETS.register_module()
class COCOObjectDataset(BaseSegDataset):
    """COCO 2017 as 81-class semantic segmentation (UniMatch's "COCO object").

    Label 0 is background, 1..80 the COCO thing categories in category-id
    order (``COCO_CATEGORY_IDS``), 255 is ignore. The label PNGs are made from
    ``instances_{train,val}2017.json`` by
    ``tools/dataset_converters/coco_object.py``. Layout::

        coco/train2017/000000000009.jpg
        coco/masks/train2017/000000000009.png
        coco/val2017/...          coco/masks/val2017/...

    The images to use come from, in this order:

    - ``published_split`` (e.g. ``'coco/1_512'``, ``'coco/val'``): one of
      UniMatch's published lists, downloaded once into the split cache and
      checked against its sha256 (``mmsamptx.datasets.published_splits``);
    - ``ann_file``: a split file, one 12-digit image id per line (e.g.
      ``splits/coco/1_512/seed0/labeled.txt``, labels from
      ``data_prefix['seg_map_path']``) or UniMatch's
      ``<image path> <label path>`` lines relative to ``data_root``;
    - neither: every image under ``data_prefix['img_path']``.

    UniMatch's lines name ``train2017/<id>.jpg masks/<id>.png`` (one flat
    ``masks/`` folder for train and val): the label is read where the line
    says. Such masks are UniMatch's own download, or this project's converter
    run with ``--layout unimatch``. Every file a split names must exist, else
    ``FileNotFoundError`` names the split file, the line and the path looked
    for. An empty dataset raises ``ValueError``.

    Args:
        published_split (str, optional): Name of a published COCO list
            (``'1_512'`` is read as ``'coco/1_512'``). Excludes ``ann_file``.
        splits_dir (str, optional): Split cache folder; defaults to
            ``$MMSAMPTX_SPLITS_DIR`` or ``~/.cache/mmsamptx/splits``.
    """

    METAINFO = dict(classes=COCO_CLASSES)

    def __init__(self,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 reduce_zero_label: bool = False,
                 published_split: Optional[str] = None,
                 splits_dir: Optional[str] = None,
                 **kwargs) -> None:
        if published_split is not None:
            kwargs['ann_file'] = published_split_path(
                'coco', published_split, splits_dir, kwargs.get('ann_file'))
        self.published_split = published_split
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the ids of the split file (or the whole image folder)."""
        if self.ann_file and not osp.isdir(self.ann_file):
            data_list = data_list_from_split(self, self.ann_file, _MASK_HINT)
            source = f'split file {self.ann_file}'
        else:
            img_dir = self.data_prefix.get('img_path', '')
            if not osp.isdir(img_dir):
                raise FileNotFoundError(f'COCO image folder {img_dir} does '
                                        'not exist')
            data_list = super().load_data_list()
            source = f'folder {img_dir}'
        if not data_list:
            raise ValueError(f'COCOObjectDataset is empty: no '
                             f'*{self.img_suffix} image found from {source}')
        return data_list
