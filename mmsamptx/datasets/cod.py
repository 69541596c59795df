"""Camouflaged object detection datasets (COD10K, CAMO, CHAMELEON, NC4K)."""
import os.path as osp
import re
from typing import List, Optional, Tuple

from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .utils import data_list_from_split, list_files

_CAMEL = re.compile(r'(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])')


def camel_to_words(name: str) -> str:
    """Turn ``BatFish`` / ``Stick_Insect`` into ``bat fish`` / ``stick insect``."""
    name = name.replace('_', ' ')
    return ' '.join(_CAMEL.sub(' ', name).lower().split())


def parse_cod10k_name(stem: str) -> Optional[Tuple[bool, str, str]]:
    """Parse a COD10K file stem into ``(is_camouflaged, super class, class)``.

    ``COD10K-CAM-1-Aquatic-1-BatFish-1`` gives ``(True, 'aquatic',
    'bat fish')``; ``COD10K-NonCAM-...`` gives ``is_camouflaged=False``. Stems
    not in COD10K's naming scheme (CAMO, CHAMELEON, NC4K) give ``None``.
    """
    parts = stem.split('-')
    if len(parts) < 7 or parts[0] != 'COD10K' or \
            parts[1] not in ('CAM', 'NonCAM'):
        return None
    # Class names never contain '-', the trailing part is the image index.
    return (parts[1] == 'CAM', camel_to_words(parts[3]),
            camel_to_words('-'.join(parts[5:-1])))


_CAMO = re.compile(r'^camourflage_\d+$')
_CHAMELEON = re.compile(r'^animal-\d+$')
AUTHORS_OBJECT_TEXT = 'Camouflaged object'
AUTHORS_ANIMAL_TEXT = 'Camouflaged animal'


def authors_class_text(stem: str) -> str:
    """The per-image text of the SAM-PTx authors' COD datasets (samptx-authors.md §6.10).

    - ``COD10K-CAM-n-<Super>-n-<Class>-n`` gives ``<Class>`` as written,
      CamelCase kept (``LeafySeaDragon``), or ``'Camouflaged object'`` when the
      super class or the class is ``Other``;
    - CAMO ``camourflage_#####`` gives ``'Camouflaged object'``;
    - CHAMELEON ``animal-##`` gives ``'Camouflaged animal'``;
    - any other name gives ``'Camouflaged object'``.

    A stem that starts as a COD10K name (``COD10K-``) but yields no class --
    too few ``-`` fields, a non-numeric index, or an empty super class or class
    field -- raises ``ValueError`` naming it: a broken COD10K name would
    otherwise silently become the generic text.
    """
    if stem.startswith('COD10K-'):
        parts = stem.split('-')
        cls = '-'.join(parts[5:-1])
        if len(parts) < 7 or parts[1] not in ('CAM', 'NonCAM') or \
                not (parts[2].isdigit() and parts[4].isdigit() and parts[-1].isdigit()) or \
                not parts[3] or not cls:
            raise ValueError(
                f'COD10K file name {stem!r} yields no class: expected '
                "'COD10K-CAM-<n>-<Super>-<n>-<Class>-<n>' with non-empty <Super> and <Class>")
        if parts[1] == 'NonCAM':
            return AUTHORS_OBJECT_TEXT  # not of the CAM form: "any other name"
        if parts[3] == 'Other' or cls == 'Other':
            return AUTHORS_OBJECT_TEXT
        return cls
    if _CHAMELEON.match(stem):
        return AUTHORS_ANIMAL_TEXT
    return AUTHORS_OBJECT_TEXT  # CAMO (camourflage_#####) and any other name


@DATASETS.register_module()
class CODDataset(BaseSegDataset):
    """Binary camouflaged-object segmentation with a class name per image.

    Layout shared by COD10K, CAMO, CHAMELEON and NC4K::

        <data_root>/Train/Image/*.jpg     <data_root>/Train/GT_Object/*.png
        <data_root>/Test/Image/*.jpg      <data_root>/Test/GT_Object/*.png

    Masks hold 0/255 (0/1 is also accepted); ``label_map={255: 1}`` makes
    mmseg's ``LoadAnnotations`` turn them into 0 (background) / 1 (object).
    Masks with other values must be binarised first
    (``tools/dataset_converters/cod.py verify`` reports them).

    Each data info gets ``class_name`` (str): for COD10K the sub-class parsed
    from the file name (``COD10K-CAM-1-Aquatic-1-BatFish-1.jpg`` ->
    ``'bat fish'``), for other datasets ``fallback_class_name``; also
    ``super_class`` and ``is_camouflaged``. To carry them into the packed
    ``SegDataSample`` add them to ``PackSegInputs.meta_keys``::

        dict(type='PackSegInputs',
             meta_keys=('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                        'pad_shape', 'scale_factor', 'flip',
                        'flip_direction', 'reduce_zero_label', 'class_name'))

    Non-camouflaged COD10K images (``COD10K-NonCAM-*``, no object mask) are
    left out by default, as the official split does (train: 3,040 CAM images,
    test: 2,026 CAM images); ``include_noncam=True`` keeps them.

    Args:
        split (str | None): ``'train'`` or ``'test'`` sets ``data_prefix`` to
            ``Train/Image`` + ``Train/GT_Object`` (resp. ``Test/...``) when
            ``data_prefix`` is not given. Defaults to None.
        include_noncam (bool): Keep ``COD10K-NonCAM-*`` images. Defaults to
            False.
        fallback_class_name (str): Class name for images whose file name
            carries none. Defaults to ``'camouflaged object'``.
        use_file_class_name (bool): Parse COD10K names; False gives every
            image ``fallback_class_name``. Defaults to True.
        text_rule (str): How ``class_name`` is made. ``'words'``: COD10K
            class names in lower-case words (``'bat fish'``), other datasets
            ``fallback_class_name``. ``'authors'``: exactly the SAM-PTx authors'
            rules (:func:`authors_class_text`: ``'BatFish'``, ``'Camouflaged
            object'``, ``'Camouflaged animal'`` for CHAMELEON); then
            ``fallback_class_name`` and ``use_file_class_name`` are not used, and a
            broken COD10K name raises. Defaults to 'words'.
        ann_file (str): Optional split file (one image stem per line).
    """

    TEXT_RULES = ('words', 'authors')

    METAINFO = dict(
        classes=('background', 'camouflaged object'),
        palette=[[0, 0, 0], [255, 255, 255]])

    SPLIT_PREFIXES = dict(
        train=dict(img_path='Train/Image', seg_map_path='Train/GT_Object'),
        test=dict(img_path='Test/Image', seg_map_path='Test/GT_Object'))

    def __init__(self,
                 split: Optional[str] = None,
                 include_noncam: bool = False,
                 fallback_class_name: str = 'camouflaged object',
                 use_file_class_name: bool = True,
                 text_rule: str = 'words',
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        if data_prefix is None:
            if split not in self.SPLIT_PREFIXES:
                raise ValueError(f'CODDataset split must be one of '
                                 f'{sorted(self.SPLIT_PREFIXES)} when '
                                 f'data_prefix is not given, got {split!r}')
            data_prefix = dict(self.SPLIT_PREFIXES[split])
        if text_rule not in self.TEXT_RULES:
            raise ValueError(f'CODDataset text_rule must be one of {self.TEXT_RULES}, '
                             f'got {text_rule!r}')
        self.text_rule = text_rule
        self.split = split
        self.include_noncam = include_noncam
        self.fallback_class_name = fallback_class_name
        self.use_file_class_name = use_file_class_name
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            reduce_zero_label=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """List images (CAM only by default) with their class names."""
        img_dir = self.data_prefix.get('img_path', '')
        seg_dir = self.data_prefix.get('seg_map_path', None)
        if self.ann_file and not osp.isdir(self.ann_file):
            data_list = data_list_from_split(self, self.ann_file)
        else:
            data_list = []
            for name in list_files(img_dir, self.img_suffix):
                stem = name[:-len(self.img_suffix)]
                info = dict(img_path=osp.join(img_dir, name))
                if seg_dir:
                    info['seg_map_path'] = osp.join(
                        seg_dir, stem + self.seg_map_suffix)
                    if not osp.isfile(info['seg_map_path']):
                        parsed = parse_cod10k_name(stem)
                        if parsed is not None and not parsed[0] and \
                                not self.include_noncam:
                            continue  # NonCAM without mask: dropped anyway
                        raise FileNotFoundError(
                            f'mask {info["seg_map_path"]} for image '
                            f'{info["img_path"]} does not exist')
                info['seg_fields'] = []
                info['reduce_zero_label'] = False
                data_list.append(info)
        out = []
        for info in data_list:
            stem = osp.splitext(osp.basename(info['img_path']))[0]
            parsed = parse_cod10k_name(stem)
            if parsed is not None and not parsed[0] and \
                    not self.include_noncam:
                continue
            if self.text_rule == 'authors':
                info['is_camouflaged'] = True if parsed is None else parsed[0]
                info['super_class'] = '' if parsed is None else stem.split('-')[3]
                try:
                    info['class_name'] = authors_class_text(stem)
                except ValueError as e:
                    raise ValueError(f'{info["img_path"]}: {e}') from e
            elif parsed is not None and self.use_file_class_name:
                info['is_camouflaged'] = parsed[0]
                info['super_class'] = parsed[1]
                info['class_name'] = parsed[2]
            else:
                info['is_camouflaged'] = True if parsed is None else parsed[0]
                info['super_class'] = ''
                info['class_name'] = self.fallback_class_name
            info['label_map'] = {255: 1}
            out.append(info)
        if not out:
            raise ValueError(
                f'CODDataset is empty: no *{self.img_suffix} image kept from '
                f'{img_dir} (include_noncam={self.include_noncam})')
        return out
