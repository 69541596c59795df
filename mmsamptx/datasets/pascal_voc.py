"""PASCAL VOC 2012 restricted to a split file, for the CLIP-Guided SAM / SAM-PTx benchmarks.

Besides :class:`PascalVOCSplitDataset` this module holds what the converter
``tools/dataset_converters/pascal_voc.py`` needs (locating the dataset root,
the (image, label) pairs of a split, verification, the official archive), so
the tool only parses arguments, and the class names and synonyms the authors'
text encoder uses.
"""
import os.path as osp
import tarfile
from typing import Dict, List, Optional, Tuple

from mmseg.datasets import PascalVOCDataset
from mmseg.registry import DATASETS

from mmsamptx.utils import atomic_write
from .published_splits import (list_published_splits, published_split,
                               published_split_path, resolve_published_name)
from .utils import data_list_from_split, parse_split_file, verify_pairs

#: The official VOC 2012 trainval archive (about 2 GB), and what it unpacks to.
VOC_URL = ('http://host.robots.ox.ac.uk/pascal/VOC/voc2012/'
           'VOCtrainval_11-May-2012.tar')
VOC_ARCHIVE = 'VOCtrainval_11-May-2012.tar'
VOC_SUBDIR = osp.join('VOCdevkit', 'VOC2012')
IMG_DIR = 'JPEGImages'
SEG_DIR = 'SegmentationClass'
NUM_CLASSES = 21  # background + 20 objects; 255 marks boundaries (ignored)
IGNORE_INDEX = 255

#: Official segmentation lists, ``ImageSets/Segmentation/<name>.txt``.
OFFICIAL_SPLITS = dict(train=1464, val=1449, trainval=2913)

#: mmseg's VOC class names (label order 0..20), kept as the dataset's classes.
VOC_CLASSES = PascalVOCDataset.METAINFO['classes']

#: The 20 object classes as the authors' code spells them for text and
#: scoring (labels 1..20; samptx-authors.md §6.9): three differ from the VOC
#: names ('diningtable', 'pottedplant', 'tvmonitor').
VOC_TEXT_NAMES = (
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'dining table', 'dog', 'horse', 'motorbike', 'person',
    'potted plant', 'sheep', 'sofa', 'train', 'tv')

#: VOC class name -> text name, for the 20 object classes.
VOC_TEXT_NAME_OF_CLASS: Dict[str, str] = dict(zip(VOC_CLASSES[1:],
                                                  VOC_TEXT_NAMES))

#: Synonyms whose raw CLIP embeddings the authors average per class
#: (samptx-authors.md §5.3). Only the entries the method notes state are here;
#: every other class is encoded from its name alone unless a config passes
#: more (``OpenCLIPTextEncoder(synonyms={name: [strings]})``). The first
#: string is the name used for scoring.
VOC_SYNONYMS: Dict[str, List[str]] = {
    'aeroplane': ['aeroplane', 'airplane', 'plane', 'aircraft', 'glider'],
    'person': ['person', 'people', 'baby', 'face'],
    'bird': ['bird'],
    'cow': ['cow'],
    'sheep': ['sheep'],
    'sofa': ['sofa'],
}

_LINE_HINT = ('UniMatch lines are relative to the VOC2012 folder '
              '(data_root=.../VOCdevkit/VOC2012)')


@DATASETS.register_module()
class PascalVOCSplitDataset(PascalVOCDataset):
    """PASCAL VOC 2012 segmentation (21 labels) read through a split file.

    The layout is the official archive's; ``data_root`` is the ``VOC2012``
    folder::

        VOCdevkit/VOC2012/
            JPEGImages/2007_000033.jpg
            SegmentationClass/2007_000033.png   (palette PNG)
            ImageSets/Segmentation/{train,val,trainval}.txt

    Labels are 0 (background), 1..20 (``VOC_CLASSES``, mmseg's names) and 255
    (object boundaries and "difficult" regions, ignored). The label PNGs are
    palette images: their pixel values are the palette indices, which is what
    mmseg's ``LoadAnnotations`` returns with its default ``pillow`` decoder.
    Do not set ``imdecode_backend='cv2'`` for VOC: OpenCV expands the palette
    to colours.

    The images to use come from, in this order:

    - ``published_split`` (``'pascal/92'``, ``'pascal/183'``, ``'pascal/366'``,
      ``'pascal/732'``, ``'pascal/1464'``, ``'pascal/val'``; a bare ``'92'``
      is read as ``'pascal/92'``): UniMatch's published lists, downloaded once
      into the split cache and checked against their sha256;
    - ``ann_file`` (joined to ``data_root`` when relative): image ids
      (``2007_000033``, as ``ImageSets/Segmentation/val.txt``), read from
      ``data_prefix``, or UniMatch's lines
      ``JPEGImages/2007_000733.jpg SegmentationClass/2007_000733.png``,
      relative to ``data_root``.

    One of the two is required: ``JPEGImages`` holds 17,125 images, of which
    only 2,913 have a segmentation label. A missing folder, split file or
    listed file raises ``FileNotFoundError`` naming the path.

    Background is never prompted in CLIP-Guided SAM or SAM-PTx (20 classes
    scored): wrap the dataset in ``ClassPairDataset(exclude_classes=[0])``.
    The text of each class is :data:`VOC_TEXT_NAMES` / :data:`VOC_SYNONYMS`.

    Args:
        ann_file (str): Split file; '' when ``published_split`` is given.
        published_split (str, optional): Name of a published PASCAL list.
            Excludes ``ann_file``.
        splits_dir (str, optional): Split cache folder; defaults to
            ``$MMSAMPTX_SPLITS_DIR`` or ``~/.cache/mmsamptx/splits``.
        data_prefix (dict, optional): Folders of id lines, relative to
            ``data_root``. Defaults to ``JPEGImages`` / ``SegmentationClass``.
        **kwargs: Passed to ``PascalVOCDataset`` / ``BaseSegDataset``.
    """

    def __init__(self,
                 ann_file: str = '',
                 published_split: Optional[str] = None,
                 splits_dir: Optional[str] = None,
                 data_prefix: Optional[dict] = None,
                 **kwargs) -> None:
        if published_split is not None:
            ann_file = published_split_path('pascal', published_split,
                                            splits_dir, ann_file)
        if not ann_file:
            raise ValueError(
                'PascalVOCSplitDataset needs published_split (one of '
                f'{list_published_splits("pascal")}) or ann_file (image ids '
                'or UniMatch lines)')
        if data_prefix is None:
            data_prefix = dict(img_path=IMG_DIR, seg_map_path=SEG_DIR)
        self.published_split = published_split
        _check_paths(kwargs.get('data_root'), ann_file, data_prefix)
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the images (and labels) the split file names, in file order."""
        data_list = data_list_from_split(self, self.ann_file, _LINE_HINT)
        if not data_list:
            raise ValueError(f'PascalVOCSplitDataset is empty: split file '
                             f'{self.ann_file} names no image')
        return data_list


def _check_paths(data_root: Optional[str], ann_file: str,
                 data_prefix: dict) -> None:
    """Raise ``FileNotFoundError`` naming the first missing root, split or folder.

    ``PascalVOCDataset`` only asserts these; checking first gives the path.
    """
    root = data_root or ''
    if data_root and not osp.isdir(data_root):
        raise FileNotFoundError(
            f'PASCAL VOC root {data_root} does not exist; expected the '
            f'{VOC_SUBDIR} folder of {VOC_ARCHIVE} (see docs/datasets.md)')
    split = ann_file if osp.isabs(ann_file) else osp.join(root, ann_file)
    if not osp.isfile(split):
        raise FileNotFoundError(f'PASCAL VOC split file {split} does not '
                                'exist')
    img_dir = osp.join(root, data_prefix.get('img_path', '') or '')
    if not osp.isdir(img_dir):
        raise FileNotFoundError(
            f'PASCAL VOC image folder {img_dir} does not exist; expected '
            f'{IMG_DIR}/ under the {VOC_SUBDIR} folder')


# ---------------------------------------------------------------------------
# Converter logic: locate, list, verify, download
# ---------------------------------------------------------------------------


def find_voc_root(path: str) -> str:
    """Return the ``VOC2012`` folder given it, ``VOCdevkit`` or their parent.

    Raises ``FileNotFoundError`` naming the paths tried.
    """
    tried = [path, osp.join(path, 'VOC2012'), osp.join(path, VOC_SUBDIR)]
    for cand in tried:
        if osp.isdir(osp.join(cand, IMG_DIR)):
            return cand
    raise FileNotFoundError(
        f'no PASCAL VOC 2012 dataset at {path}: none of '
        + ', '.join(osp.join(c, IMG_DIR) for c in tried) + ' exists')


def split_file_of(root: str, split: Optional[str] = None,
                  splits_dir: Optional[str] = None) -> Tuple[str, str]:
    """Return ``(name, path)`` of the split file ``split`` names.

    ``split`` is a path to a split file; ``train``, ``val`` or ``trainval``
    (``ImageSets/Segmentation/<split>.txt`` in ``root``; the default is
    ``trainval``); or a published name (``92``, ``pascal/1464``,
    ``pascal/val``) fetched into the split cache. An unknown name lists the
    valid ones.
    """
    split = split or 'trainval'
    if osp.isfile(split):
        return split, split
    if split in OFFICIAL_SPLITS:
        path = osp.join(root, 'ImageSets', 'Segmentation', split + '.txt')
        if not osp.isfile(path):
            raise FileNotFoundError(f'official split file {path} does not '
                                    'exist')
        return split, path
    try:
        name = resolve_published_name(split, 'pascal')
    except ValueError:
        raise ValueError(
            f'unknown PASCAL VOC split {split!r}; valid: a split file, '
            + ', '.join(list(OFFICIAL_SPLITS) + list_published_splits('pascal')))
    return name, published_split(name, splits_dir)


def split_pairs(root: str, split_file: str) -> List[Tuple[str, str]]:
    """Return the (image, label) paths a split file names, under ``root``.

    An id line gives ``JPEGImages/<id>.jpg`` and ``SegmentationClass/<id>.png``;
    a UniMatch line gives its two paths.
    """
    pairs = []
    for e in parse_split_file(split_file):
        if e.img_path is not None:
            pairs.append((osp.join(root, e.img_path),
                          osp.join(root, e.seg_path)))
        else:
            pairs.append((osp.join(root, IMG_DIR, e.img_id + '.jpg'),
                          osp.join(root, SEG_DIR, e.img_id + '.png')))
    return pairs


def verify_voc(root: str, split: Optional[str] = None,
               expect: Optional[int] = None,
               splits_dir: Optional[str] = None,
               workers: int = 0) -> dict:
    """Check the images and labels a split names; never raises for bad files.

    Each listed image must decode; each label must exist, be a single-channel
    (palette or grey) PNG of its image's size, with values in 0..20 or 255.
    ``expect`` is the number of complete (image and label present) pairs.
    Returns a dict with ``root``, ``name``, ``split_file``, ``listed``,
    ``images``, ``labels`` (files present), ``image_histogram`` /
    ``pixel_histogram`` (per class) and ``errors`` (one line per fault).
    """
    root = find_voc_root(root)
    name, path = split_file_of(root, split, splits_dir)
    pairs = split_pairs(root, path)
    rep = verify_pairs(pairs, NUM_CLASSES, IGNORE_INDEX, workers=workers,
                       desc=f'PASCAL VOC {name}', raise_on_error=False)
    has_img = [osp.isfile(i) for i, _ in pairs]
    has_seg = [osp.isfile(s) for _, s in pairs]
    complete = sum(a and b for a, b in zip(has_img, has_seg))
    errors = list(rep['errors'])
    if expect is not None and complete != expect:
        errors.append(f'{name}: {complete} complete image/label pairs under '
                      f'{root}, expected {expect}')
    return dict(root=root, name=name, split_file=path, listed=len(pairs),
                images=sum(has_img), labels=sum(has_seg), complete=complete,
                image_histogram=rep['image_histogram'],
                pixel_histogram=rep['pixel_histogram'], errors=errors)


def download_voc(out_dir: str, url: str = VOC_URL,
                 timeout: float = 30.0) -> str:
    """Fetch and unpack the official trainval archive; return the VOC2012 folder.

    A dataset already unpacked in ``out_dir`` is returned as it is; an
    archive placed at ``out_dir/VOCtrainval_11-May-2012.tar`` is unpacked
    without downloading. Offline, ``RuntimeError`` names the URL and where to
    place the archive.
    """
    root = osp.join(out_dir, VOC_SUBDIR)
    archive = osp.join(out_dir, VOC_ARCHIVE)
    marker = osp.join(root, '.extracted')
    if osp.isfile(marker) or (not osp.isfile(archive) and osp.isdir(
            osp.join(root, IMG_DIR)) and osp.isdir(osp.join(root, SEG_DIR))):
        return root
    if not osp.isfile(archive):
        import urllib.request
        try:
            # atomic_write: an interrupted download leaves no partial tar.
            with urllib.request.urlopen(url, timeout=timeout) as r, \
                    atomic_write(archive, 'wb') as f:
                for chunk in iter(lambda: r.read(1 << 20), b''):
                    f.write(chunk)
        except OSError as e:
            raise RuntimeError(
                f'could not download {url} ({getattr(e, "reason", e)}); on a '
                f'machine with internet download it (about 2 GB), place it at '
                f'{archive} and run this command again: it unpacks to '
                f'{root}') from e
    try:
        with tarfile.open(archive) as tar:
            # The 'data' filter refuses members outside out_dir and links.
            tar.extractall(out_dir, filter='data')
    except tarfile.TarError as e:
        raise RuntimeError(f'{archive} is not a valid tar archive ({e}); '
                           'delete it and download it again') from e
    if not osp.isdir(osp.join(root, IMG_DIR)):
        raise RuntimeError(f'{archive} did not unpack to {root}/{IMG_DIR}; '
                           f'is it {VOC_ARCHIVE}?')
    with atomic_write(marker, 'wb') as f:
        f.write(b'ok\n')
    return root


__all__ = [
    'PascalVOCSplitDataset', 'VOC_CLASSES', 'VOC_TEXT_NAMES',
    'VOC_TEXT_NAME_OF_CLASS', 'VOC_SYNONYMS', 'VOC_URL', 'find_voc_root',
    'split_file_of', 'split_pairs', 'verify_voc', 'download_voc'
]
