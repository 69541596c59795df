"""One sample per (image, present class) pair, the sampling of the SAM-PTx authors."""
import copy
import hashlib
import json
import logging
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.dist import is_main_process
from mmengine.logging import print_log
from mmengine.utils import ProgressBar
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS
from torch.utils.data import Dataset

from mmsamptx.utils import atomic_write

_CACHE_VERSION = 1
ClassSpec = Union[int, str]


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/mmsamptx/class_pairs`` (``~/.cache/...`` by default)."""
    root = os.environ.get('XDG_CACHE_HOME') or osp.join(osp.expanduser('~'), '.cache')
    return osp.join(root, 'mmsamptx', 'class_pairs')


def _find_load_annotations(pipeline) -> dict:
    """Decoding arguments of the pipeline's ``LoadAnnotations`` (or defaults).

    The scan decodes label files exactly as training does, so a label PNG that
    e.g. pillow and cv2 read differently (palette images) gives the same classes.
    """
    for t in getattr(pipeline, 'transforms', []):
        if isinstance(t, LoadAnnotations):
            return dict(imdecode_backend=t.imdecode_backend, backend_args=t.backend_args)
    return {}


@DATASETS.register_module()
class ClassPairDataset(Dataset):
    """Expand a segmentation dataset into one sample per (image, present class).

    This is the authors' sample definition (SAM-PTx / CLIP-Guided SAM code base,
    samptx-authors.md §6.1): a sample is an image together with one class that is
    present in its label map, and an epoch visits every pair once. The classes
    present are read from the label maps as mmseg's ``LoadAnnotations`` produces
    them (the inner dataset's ``reduce_zero_label`` and ``label_map`` applied, by
    running ``LoadAnnotations`` itself); ``ignore_index`` is never a class.

    Example (ADE20K: ``reduce_zero_label`` makes "other" the ignore value; COCO
    object: background 0 is never prompted, so ``exclude_classes=[0]``)::

        dataset=dict(
            type='ClassPairDataset',
            dataset=dict(type='ADE20KSplitDataset', ..., pipeline=train_pipeline),
            ignore_index=255)

    ``__getitem__(i)`` runs the inner dataset's pipeline on the pair's image and
    writes the pair's class into the packed ``SegDataSample`` metainfo as
    ``sample_class`` (int); without ``PackSegInputs`` in the pipeline it is the
    result key ``sample_class``. The data info handed to the pipeline carries
    ``sample_class`` too, for transforms that need it.

    Scanning the label maps reads every label file once (with a progress bar); the
    result is cached as JSON in ``cache_dir``, keyed by the inner dataset's label
    files (paths, sizes, modification times) and the label rules
    (``reduce_zero_label``, ``label_map``, ``ignore_index``), so a later build
    reads no label file. The cache holds every class present; ``classes`` /
    ``exclude_classes`` / ``on_empty`` are applied after it and may change freely.
    In distributed runs each rank scans on a cold cache (the write is atomic, so
    concurrent writers are safe) and only the main process shows the bar.

    Args:
        dataset (dict | BaseDataset): The inner mmseg dataset or its config.
        ignore_index (int, optional): Label value that is never a class. Defaults
            to the inner dataset's ``ignore_index`` (255 for mmseg datasets).
        classes (Sequence[int | str], optional): Only these class ids (or names
            from ``metainfo['classes']``) become samples. None: every class.
        exclude_classes (Sequence[int | str]): Class ids or names that never become
            samples (COCO object / VOC: ``[0]``, the background). Defaults to ().
        on_empty (str): An image without any class to sample: ``'error'`` raises a
            ``ValueError`` naming its label file; ``'skip'`` leaves it out and logs
            a warning with the number of images left out. Defaults to 'error'.
        cache_dir (str | None | False): Folder of the class cache; None uses
            :func:`default_cache_dir`, False disables the cache.
        lazy_init (bool): Defer scanning until :meth:`full_init`. Defaults to False.
    """

    ON_EMPTY = ('error', 'skip')

    def __init__(self,
                 dataset: Union[dict, BaseDataset],
                 ignore_index: Optional[int] = None,
                 classes: Optional[Sequence[ClassSpec]] = None,
                 exclude_classes: Sequence[ClassSpec] = (),
                 on_empty: str = 'error',
                 cache_dir: Union[str, None, bool] = None,
                 lazy_init: bool = False) -> None:
        if on_empty not in self.ON_EMPTY:
            raise ValueError(f'on_empty must be one of {self.ON_EMPTY}, got {on_empty!r}')
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        elif not isinstance(dataset, BaseDataset):
            raise TypeError('ClassPairDataset.dataset must be a config dict or an mmengine '
                            f'BaseDataset, got {type(dataset).__name__}')
        self.dataset = dataset
        if ignore_index is None:
            ignore_index = getattr(dataset, 'ignore_index', 255)
        self.ignore_index = int(ignore_index)
        self.on_empty = on_empty
        if cache_dir is True:
            cache_dir = None
        self.cache_dir = default_cache_dir() if cache_dir is None else cache_dir
        self._classes_arg = classes
        self._exclude_arg = exclude_classes
        num_classes = len(self.metainfo.get('classes', ()))
        if num_classes == 0:
            raise ValueError(f'inner dataset {type(dataset).__name__} has no metainfo '
                             "'classes'; ClassPairDataset needs them to check class ids")
        self.num_classes = num_classes
        self.sampled_classes = self._resolve_classes()
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------------ setup
    @property
    def metainfo(self) -> dict:
        """The inner dataset's metainfo (classes, palette, ...)."""
        return copy.deepcopy(self.dataset.metainfo)

    @property
    def test_mode(self) -> bool:
        return self.dataset.test_mode

    @property
    def pipeline(self):
        return self.dataset.pipeline

    def _class_id(self, spec: ClassSpec, arg: str) -> int:
        names = list(self.metainfo['classes'])
        if isinstance(spec, str):
            if spec not in names:
                raise ValueError(f'{arg}: unknown class name {spec!r}; valid names: {names}')
            return names.index(spec)
        cid = int(spec)
        if not 0 <= cid < self.num_classes or cid == self.ignore_index:
            raise ValueError(f'{arg}: class id {cid} is not a class of '
                             f'{type(self.dataset).__name__} (ids 0..{self.num_classes - 1}, '
                             f'ignore_index {self.ignore_index})')
        return cid

    def _resolve_classes(self) -> np.ndarray:
        """Boolean table over label values 0..255: may this value become a sample?"""
        allowed = np.zeros(256, bool)
        if self._classes_arg is None:
            allowed[:self.num_classes] = True
        else:
            for spec in self._classes_arg:
                allowed[self._class_id(spec, 'classes')] = True
        for spec in self._exclude_arg:
            allowed[self._class_id(spec, 'exclude_classes')] = False
        if 0 <= self.ignore_index < 256:
            allowed[self.ignore_index] = False
        if not allowed.any():
            raise ValueError(f'no class left to sample (classes={self._classes_arg}, '
                             f'exclude_classes={list(self._exclude_arg)})')
        return allowed

    def full_init(self) -> None:
        """Scan (or read from the cache) the classes of every image; build the pairs."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        present = self._present_classes()
        img_idx, cls, empty = [], [], []
        for i, values in enumerate(present):
            kept = [c for c in values if self.sampled_classes[c]]
            if not kept:
                empty.append(i)
                continue
            img_idx.extend([i] * len(kept))
            cls.extend(kept)
        if empty:
            first = self.dataset.get_data_info(empty[0])['seg_map_path']
            if self.on_empty == 'error':
                raise ValueError(
                    f'label file {first} has no class to sample (present: {present[empty[0]]}, '
                    f'ignore_index {self.ignore_index}, classes={self._classes_arg}, '
                    f'exclude_classes={list(self._exclude_arg)}); {len(empty)} image(s) of '
                    f"{len(present)} are like this. Pass on_empty='skip' to leave them out")
            print_log(f'ClassPairDataset: {len(empty)} of {len(present)} images have no class '
                      f'to sample and are left out (first: {first})',
                      logger='current', level=logging.WARNING)
        if not cls:
            raise ValueError('ClassPairDataset is empty: no image has a class to sample')
        self._img_idx = np.asarray(img_idx, np.int64)
        self._cls = np.asarray(cls, np.int64)
        self._per_image = {}
        for i, c in zip(img_idx, cls):
            self._per_image.setdefault(i, []).append(c)
        self._fully_initialized = True

    # ------------------------------------------------------------- scanning
    def _label_rules(self) -> Tuple[bool, Optional[dict]]:
        info = self.dataset.get_data_info(0) if len(self.dataset) else {}
        rzl = bool(info.get('reduce_zero_label', getattr(self.dataset, 'reduce_zero_label', False)))
        label_map = info.get('label_map', getattr(self.dataset, 'label_map', None))
        return rzl, label_map

    def _cache_key(self, seg_maps: List[str]) -> str:
        rzl, label_map = self._label_rules()
        files = []
        for p in seg_maps:
            try:
                st = os.stat(p)
                files.append([p, st.st_size, st.st_mtime_ns])
            except OSError:  # not a local file (e.g. a remote backend): key by name only
                files.append([p, None, None])
        rules = dict(version=_CACHE_VERSION, dataset=type(self.dataset).__name__,
                     ann_file=getattr(self.dataset, 'ann_file', ''), reduce_zero_label=rzl,
                     label_map=sorted((int(k), int(v)) for k, v in (label_map or {}).items()),
                     ignore_index=self.ignore_index, files=files)
        return hashlib.sha1(json.dumps(rules).encode('utf-8')).hexdigest()

    def _present_classes(self) -> List[List[int]]:
        """Classes present in each inner image (ignore left out), cached."""
        infos = [self.dataset.get_data_info(i) for i in range(len(self.dataset))]
        for info in infos:
            if not info.get('seg_map_path'):
                raise ValueError(f'image {info.get("img_path", "?")} has no seg_map_path: '
                                 'ClassPairDataset needs label maps to find the classes')
        seg_maps = [info['seg_map_path'] for info in infos]
        cache_file = None
        if self.cache_dir is not False:
            cache_file = osp.join(self.cache_dir, f'class_pairs_{self._cache_key(seg_maps)}.json')
            cached = self._read_cache(cache_file, seg_maps)
            if cached is not None:
                return cached
        present = self.scan_labels(infos)
        if cache_file is not None:
            with atomic_write(cache_file, 'wb') as f:
                f.write(json.dumps(dict(version=_CACHE_VERSION, seg_maps=seg_maps,
                                        present=present)).encode('utf-8'))
        return present

    @staticmethod
    def _read_cache(path: str, seg_maps: List[str]) -> Optional[List[List[int]]]:
        if not osp.isfile(path):
            return None
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (OSError, ValueError):
            return None  # unreadable or truncated by hand: rebuilt and rewritten
        if data.get('version') != _CACHE_VERSION or data.get('seg_maps') != seg_maps:
            return None
        return data['present']

    def scan_labels(self, infos: List[dict]) -> List[List[int]]:
        """Read each label file through ``LoadAnnotations``; return its classes."""
        loader = LoadAnnotations(**_find_load_annotations(self.dataset.pipeline))
        rzl, label_map = self._label_rules()
        bar = ProgressBar(len(infos)) if is_main_process() else None
        present = []
        for info in infos:
            results = loader(dict(seg_map_path=info['seg_map_path'], seg_fields=[],
                                  reduce_zero_label=info.get('reduce_zero_label', rzl),
                                  label_map=info.get('label_map', label_map)))
            counts = np.bincount(results['gt_seg_map'].ravel(), minlength=256)
            values = [int(v) for v in np.flatnonzero(counts) if v != self.ignore_index]
            bad = [v for v in values if v >= self.num_classes]
            if bad:
                raise ValueError(f'label file {info["seg_map_path"]} holds values {bad} that are '
                                 f'neither a class id (0..{self.num_classes - 1}) nor ignore_index '
                                 f'{self.ignore_index}')
            present.append(values)
            if bar is not None:
                bar.update()
        if bar is not None:
            print()  # ProgressBar leaves the cursor on its line
        return present

    # ------------------------------------------------------------- access
    def __len__(self) -> int:
        self.full_init()
        return len(self._cls)

    def pair(self, idx: int) -> Tuple[int, int]:
        """``(inner image index, class id)`` of sample ``idx``."""
        self.full_init()
        return int(self._img_idx[idx]), int(self._cls[idx])

    def classes_of(self, img_idx: int) -> List[int]:
        """Class ids that inner image ``img_idx`` contributes as samples."""
        self.full_init()
        return list(self._per_image.get(img_idx, []))

    def get_cat_ids(self, idx: int) -> List[int]:
        """The class of sample ``idx`` (mmengine's ``ClassBalancedDataset`` reads it)."""
        return [self.pair(idx)[1]]

    def get_data_info(self, idx: int) -> dict:
        """The inner image's data info with the pair's ``sample_class``."""
        img_idx, cls = self.pair(idx)
        info = self.dataset.get_data_info(img_idx)
        info['sample_class'] = cls
        return info

    def prepare_data(self, idx: int) -> Optional[dict]:
        results = self.dataset.pipeline(self.get_data_info(idx))
        if results is None:
            return None
        cls = self.pair(idx)[1]
        if 'data_samples' in results:
            results['data_samples'].set_metainfo(dict(sample_class=cls))
        else:
            results['sample_class'] = cls
        return results

    def __getitem__(self, idx: int) -> dict:
        """Run the inner pipeline on sample ``idx``; refetch as mmengine when it gives None."""
        data = self.prepare_data(idx)
        if data is not None:
            return data
        if self.test_mode:
            raise RuntimeError(f'the test pipeline gave None for sample {idx} '
                               f'({self.get_data_info(idx)["img_path"]})')
        for _ in range(self.dataset.max_refetch):
            data = self.prepare_data(int(np.random.randint(0, len(self))))
            if data is not None:
                return data
        raise RuntimeError(f'the pipeline gave None {self.dataset.max_refetch + 1} times; '
                           'check the transforms that can drop a sample')
