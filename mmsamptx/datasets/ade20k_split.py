"""ADE20K restricted to a split file, for low-data (e.g. 1/64) training."""
import os.path as osp
from typing import List

from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .utils import data_list_from_split


@DATASETS.register_module()
class ADE20KSplitDataset(ADE20KDataset):
    """ADE20K (150 classes, mmseg layout) optionally limited to a split file.

    The on-disk layout is mmseg's::

        ADEChallengeData2016/
            images/{training,validation}/ADE_*.jpg
            annotations/{training,validation}/ADE_*.png

    ``ann_file`` (mmseg's argument, joined to ``data_root`` when relative) may
    name a split file with one image id per line, as UniMatch's
    ``labeled.txt`` (``ADE_train_00000001``); such files are written by
    ``tools/dataset_converters/ade20k.py split``. Without ``ann_file`` every
    image under ``data_prefix['img_path']`` is used, as in ``ADE20KDataset``.

    Every id of the split must exist on disk: a missing one raises
    ``FileNotFoundError`` naming the split file, the id and the path looked
    for. An empty dataset raises ``ValueError``. ``reduce_zero_label`` stays
    True (label 0 = "other" becomes ignore 255), as in ``ADE20KDataset``.

    Args:
        ann_file (str): Split file; '' for the whole folder. Defaults to ''.
        **kwargs: Passed to ``ADE20KDataset`` / ``BaseSegDataset``.
    """

    def load_data_list(self) -> List[dict]:
        """Load the ids of the split file (or of the folder) as data infos."""
        if self.ann_file and not osp.isdir(self.ann_file):
            data_list = data_list_from_split(self, self.ann_file)
            source = f'split file {self.ann_file}'
        else:
            img_dir = self.data_prefix.get('img_path', '')
            if not osp.isdir(img_dir):
                raise FileNotFoundError(
                    f'ADE20K image folder {img_dir} does not exist; see '
                    'docs/datasets.md to prepare ADEChallengeData2016')
            data_list = super().load_data_list()
            source = f'folder {img_dir}'
        if not data_list:
            raise ValueError(f'{type(self).__name__} is empty: no '
                             f'*{self.img_suffix} image found from {source}')
        return data_list
