"""Referring segmentation: RefCOCO, RefCOCO+ and RefCOCOg in the ``refer`` layout."""
import json
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from .utils import coco_segm_to_mask, safe_pickle_load, write_png

# (dataset, split_by) -> splits, as published with the ``refer`` API.
REFER_SPLITS: Dict[Tuple[str, str], Tuple[str, ...]] = OrderedDict([
    (('refcoco', 'unc'), ('train', 'val', 'testA', 'testB')),
    (('refcoco', 'google'), ('train', 'val', 'test')),
    (('refcoco+', 'unc'), ('train', 'val', 'testA', 'testB')),
    (('refcocog', 'umd'), ('train', 'val', 'test')),
    (('refcocog', 'google'), ('train', 'val')),
])
DEFAULT_SPLIT_BY = {'refcoco': 'unc', 'refcoco+': 'unc', 'refcocog': 'umd'}
GROUP_BY = ('sentence', 'image')


def load_refer(refer_root: str, dataset: str, split_by: str):
    """Load ``refs(<split_by>).p`` (safely) and ``instances.json`` of a dataset.

    Returns ``(refs, images by id, annotations by id, category names by id)``.
    """
    folder = osp.join(refer_root, dataset)
    refs_path = osp.join(folder, f'refs({split_by}).p')
    inst_path = osp.join(folder, 'instances.json')
    for path in (refs_path, inst_path):
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'{dataset} annotation file {path} does not exist; see '
                'docs/datasets.md (refer layout)')
    refs = safe_pickle_load(refs_path)
    if not isinstance(refs, list):
        raise ValueError(f'{refs_path} holds a {type(refs).__name__}, '
                         'expected a list of refs')
    try:
        with open(inst_path, encoding='utf-8') as f:
            inst = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f'{inst_path} is not valid JSON (truncated?): '
                         f'{e}') from e
    images = {im['id']: im for im in inst['images']}
    anns = {a['id']: a for a in inst['annotations']}
    cats = {c['id']: c['name'] for c in inst.get('categories', [])}
    return refs, images, anns, cats


#: How the polygons of one annotation become its mask: ``'union'`` (0/1, pycocotools'
#: ``annToMask``) or ``'sum'`` (LISA's and EVF-SAM's data code: each polygon decoded
#: and the masks added, so a pixel inside two overlapping polygons is 2).
POLYGON_MERGES = ('union', 'sum')


def referred_mask_path(mask_dir: str, ann_id, polygons: str = 'union') -> str:
    """Where the mask PNG of annotation ``ann_id`` is cached (``<id>.png``; ``<id>_sum.png``
    for summed polygons)."""
    return osp.join(mask_dir, f'{ann_id}.png' if polygons == 'union' else f'{ann_id}_sum.png')


def summed_polygon_mask(segm, height: int, width: int) -> np.ndarray:
    """Each polygon of a COCO ``segmentation`` decoded on its own and the masks added (uint8)."""
    if not isinstance(segm, list):  # RLE: one mask, nothing to add
        return coco_segm_to_mask(segm, height, width)
    out = np.zeros((height, width), np.uint8)
    for poly in segm:
        out += coco_segm_to_mask([poly], height, width)
    return out


def write_referred_mask(ann: dict, image: dict, mask_dir: str, polygons: str = 'union') -> str:
    """Decode an annotation's segmentation and write it as a PNG (0/1, or summed polygons)."""
    if polygons not in POLYGON_MERGES:
        raise ValueError(f'polygons must be one of {POLYGON_MERGES}, got {polygons!r}')
    path = referred_mask_path(mask_dir, ann['id'], polygons)
    if not osp.isfile(path):
        decode = coco_segm_to_mask if polygons == 'union' else summed_polygon_mask
        write_png(path, decode(ann['segmentation'], image['height'], image['width']))
    return path


@DATASETS.register_module()
class RefCOCODataset(BaseSegDataset):
    """One sample per (referred object, expression) of RefCOCO/+/g.

    Layout (the ``refer`` toolkit's)::

        <data_root>/refcoco/refs(unc).p     + instances.json
        <data_root>/refcoco+/refs(unc).p    + instances.json
        <data_root>/refcocog/refs(umd).p    + instances.json
        <data_root>/images/train2014/COCO_train2014_*.jpg   (data_prefix)

    The mask of a sample is the referred annotation's segmentation decoded
    with pycocotools; it is cached once as a 0/1 PNG in
    ``<mask_dir>/<ann_id>.png`` (default ``<data_root>/<dataset>/masks``,
    written atomically; ``tools/dataset_converters/refcoco.py masks`` fills it
    in parallel) so mmseg's ``LoadAnnotations`` reads it unchanged.

    Each data info carries ``expression`` (the sentence's ``sent`` string),
    ``ref_id``, ``sent_id``, ``ann_id`` and ``class_name`` (COCO category). Add
    ``'expression'`` to ``PackSegInputs.meta_keys`` to reach the model.

    With ``group_by='image'`` (EVF-SAM's and LISA's unit: one image with its
    expressions) there is one data info per image of the split instead, holding
    every sentence of every ref of that image, in ref order: ``expressions``,
    ``seg_map_paths`` (each sentence's ref mask), ``ref_ids``, ``ann_ids``,
    ``sent_ids`` and ``class_names``. :class:`LoadReferringMasks` reads them (and
    draws up to ``max_expressions`` of them in training);
    :class:`PackReferringInputs` packs the (E, H, W) masks.

    ``refs(*).p`` is read with an unpickler that only accepts builtin types.

    Args:
        dataset (str): ``'refcoco'``, ``'refcoco+'`` or ``'refcocog'``.
        split (str): e.g. ``'val'``, ``'testA'``, ``'testB'`` (refcoco, +),
            ``'val'``/``'test'`` (refcocog umd), ``'train'``. An unknown split
            raises listing the valid ones.
        split_by (str, optional): ``'unc'``, ``'umd'`` or ``'google'``;
            default unc for refcoco/refcoco+, umd for refcocog.
        mask_dir (str, optional): Mask cache folder.
        data_prefix (dict): ``img_path`` of the COCO train2014 images.
        group_by (str): ``'sentence'`` (one sample per sentence) or ``'image'``
            (one sample per image with all its sentences).
        polygons (str): ``'union'`` (0/1 masks) or ``'sum'`` (the polygons of an
            annotation added, as EVF-SAM's and LISA's data code: overlaps are 2,
            which ``ReferringMetric`` keeps out of the target and of I, in U).
    """

    METAINFO = dict(classes=('background', 'referred object'),
                    palette=[[0, 0, 0], [255, 255, 255]])

    def __init__(self,
                 dataset: str = 'refcoco',
                 split: str = 'val',
                 split_by: Optional[str] = None,
                 mask_dir: Optional[str] = None,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 data_prefix: dict = dict(img_path='images/train2014'),
                 group_by: str = 'sentence',
                 polygons: str = 'union',
                 **kwargs) -> None:
        if polygons not in POLYGON_MERGES:
            raise ValueError(f'polygons must be one of {POLYGON_MERGES}, got {polygons!r}')
        self.polygons = polygons
        if group_by not in GROUP_BY:
            raise ValueError(f'group_by must be one of {GROUP_BY}, got {group_by!r}')
        self.group_by = group_by
        if dataset not in DEFAULT_SPLIT_BY:
            raise ValueError(f'dataset must be one of '
                             f'{sorted(DEFAULT_SPLIT_BY)}, got {dataset!r}')
        split_by = split_by or DEFAULT_SPLIT_BY[dataset]
        if (dataset, split_by) not in REFER_SPLITS:
            valid = [s for d, s in REFER_SPLITS if d == dataset]
            raise ValueError(f'{dataset} has no split_by {split_by!r}; valid: '
                             f'{valid}')
        valid = REFER_SPLITS[(dataset, split_by)]
        if split not in valid:
            raise ValueError(f'{dataset} ({split_by}) has no split {split!r}; '
                             f'valid splits: {list(valid)}')
        self.dataset = dataset
        self.split = split
        self.split_by = split_by
        self.mask_dir = mask_dir
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=data_prefix,
            reduce_zero_label=False,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """One data info per sentence of every ref in ``split``."""
        root = self.data_root or ''
        refs, images, anns, cats = load_refer(root, self.dataset,
                                              self.split_by)
        mask_dir = self.mask_dir or osp.join(root, self.dataset, 'masks')
        img_dir = self.data_prefix.get('img_path', '') or ''
        data_list, seen_images = [], set()
        for ref in refs:
            if ref.get('split') != self.split:
                continue
            ann = anns.get(ref['ann_id'])
            image = images.get(ref['image_id'])
            if ann is None or image is None:
                raise ValueError(
                    f'ref {ref["ref_id"]} of {self.dataset} names annotation '
                    f'{ref["ann_id"]} / image {ref["image_id"]} missing from '
                    f'{osp.join(root, self.dataset, "instances.json")}')
            img_path = osp.join(img_dir, image['file_name'])
            if img_path not in seen_images:
                if not osp.isfile(img_path):
                    raise FileNotFoundError(
                        f'image {img_path} of ref {ref["ref_id"]} '
                        f'({self.dataset} {self.split}) does not exist')
                seen_images.add(img_path)
            seg_path = write_referred_mask(ann, image, mask_dir, self.polygons)
            for sent in ref['sentences']:
                data_list.append(
                    dict(
                        img_path=img_path,
                        seg_map_path=seg_path,
                        label_map=None,
                        reduce_zero_label=False,
                        seg_fields=[],
                        expression=sent['sent'],
                        sent_id=sent.get('sent_id'),
                        ref_id=ref['ref_id'],
                        ann_id=ref['ann_id'],
                        image_id=ref['image_id'],
                        class_name=cats.get(ann.get('category_id'), '')))
        if self.group_by == 'image':
            data_list = group_sentences_by_image(data_list)
        if not data_list:
            raise ValueError(f'RefCOCODataset is empty: {self.dataset} '
                             f'({self.split_by}) has no ref in split '
                             f'{self.split!r}')
        return data_list


def group_sentences_by_image(data_list: List[dict]) -> List[dict]:
    """Merge one-per-sentence data infos into one per image (first-seen image order)."""
    per_image: 'OrderedDict[str, dict]' = OrderedDict()
    for info in data_list:
        item = per_image.get(info['img_path'])
        if item is None:
            item = per_image[info['img_path']] = dict(
                img_path=info['img_path'], image_id=info['image_id'], label_map=None,
                reduce_zero_label=False, seg_fields=[], expressions=[], seg_map_paths=[],
                ref_ids=[], ann_ids=[], sent_ids=[], class_names=[])
        item['expressions'].append(info['expression'])
        item['seg_map_paths'].append(info['seg_map_path'])
        item['ref_ids'].append(info['ref_id'])
        item['ann_ids'].append(info['ann_id'])
        item['sent_ids'].append(info['sent_id'])
        item['class_names'].append(info['class_name'])
    return list(per_image.values())
