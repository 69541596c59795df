"""ADE20K restricted to a split file, for low-data (e.g. 1/64) training."""
import os.path as osp
from typing import List, Optional

from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .published_splits import published_split_path
from .utils import data_list_from_split


@DATASETS.register_module()
class ADE20KSplitDataset(ADE20KDataset):
    """ADE20K (150 classes, mmseg layout) optionally limited to a split file.

    The on-disk layout is mmseg's::

        ADEChallengeData2016/
            images/{training,validation}/ADE_*.jpg
            annotations/{training,validation}/ADE_*.png

    The images and labels to use come from, in this order:

    - ``published_split`` (e.g. ``'ade20k/1_64'``, ``'ade20k/val'``): one of
      UniMatch V2's published lists, downloaded once into the split cache and
      checked against its sha256 (see ``mmsamptx.datasets.published_splits``);
    - ``ann_file`` (mmseg's argument, joined to ``data_root`` when relative):
      a split file, either one image id per line (``ADE_train_00000001``,
      as ``tools/dataset_converters/ade20k.py split`` writes) or UniMatch's
      ``<image path> <label path>`` lines relative to ``data_root``;
    - neither: every image under ``data_prefix['img_path']``, as in
      ``ADE20KDataset``.

    UniMatch's lines name ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png``, so ``data_root`` is the
    ``ADEChallengeData2016`` folder and ``data_prefix`` is not used for them.
    Every file a split names must exist: a missing one raises
    ``FileNotFoundError`` naming the split file, the line and the path looked
    for. An empty dataset raises ``ValueError``. ``reduce_zero_label`` stays
    True (label 0 = "other" becomes ignore 255), as in ``ADE20KDataset``, which
    fits the official annotations.

    Args:
        published_split (str, optional): Name of a published ADE20K list
            (``'1_64'`` is read as ``'ade20k/1_64'``). Excludes ``ann_file``.
        splits_dir (str, optional): Split cache folder; defaults to
            ``$MMSAMPTX_SPLITS_DIR`` or ``~/.cache/mmsamptx/splits``.
        ann_file (str): Split file; '' for the whole folder. Defaults to ''.
        **kwargs: Passed to ``ADE20KDataset`` / ``BaseSegDataset``.
    """

    def __init__(self,
                 published_split: Optional[str] = None,
                 splits_dir: Optional[str] = None,
                 **kwargs) -> None:
        if published_split is not None:
            kwargs['ann_file'] = published_split_path(
                'ade20k', published_split, splits_dir, kwargs.get('ann_file'))
        self.published_split = published_split
        super().__init__(**kwargs)

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
