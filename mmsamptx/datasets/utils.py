"""Helpers shared by the datasets and the dataset converters.

Split files, seeded subsets, safe pickle loading, COCO masks, PNG writing and
image/label verification live here so that a converter in
``tools/dataset_converters`` and the dataset class that later reads its output
agree on every rule (split size, id order, label values).
"""
import math
import os
import os.path as osp
import pickle
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence

import numpy as np

from mmsamptx.utils import atomic_write

# ---------------------------------------------------------------------------
# Split files
# ---------------------------------------------------------------------------


def split_size(num_total: int, denom: int) -> int:
    """Return how many ids a ``1/denom`` split of ``num_total`` ids holds.

    The rule is ``ceil(num_total / denom)`` (at least one id), which gives the
    split sizes of the published semi-supervised splits: ADE20K 1/64 of 20,210
    = 316 ids, COCO 1/512 of 118,287 = 232 ids (``round`` would give 231).
    """
    if num_total <= 0:
        raise ValueError(f'cannot split an empty id list (num_total={num_total})')
    if denom <= 0:
        raise ValueError(f'denom must be a positive integer, got {denom}')
    return max(1, math.ceil(num_total / denom))


def seeded_subset(ids: Iterable[str], num: int, seed: int = 0) -> List[str]:
    """Pick ``num`` ids out of ``ids`` reproducibly and return them sorted.

    The ids are sorted first, then ``numpy.random.RandomState(seed)`` (whose
    stream numpy keeps stable across versions) permutes their indices and the
    first ``num`` are kept. The same ids and seed give the same subset on
    every machine, whatever order the ids were found in.
    """
    pool = sorted(set(ids))
    if num > len(pool):
        raise ValueError(f'cannot pick {num} ids out of {len(pool)} available')
    if num < 0:
        raise ValueError(f'num must be >= 0, got {num}')
    order = np.random.RandomState(seed).permutation(len(pool))[:num]
    return sorted(pool[i] for i in order)


class SplitLine(NamedTuple):
    """One entry of a split file.

    ``img_id`` is the image's id (file stem). ``img_path``/``seg_path`` are
    the paths the line names, relative to the dataset root, for UniMatch's
    ``<image path> <label path>`` lines; None for an id-only line.
    """
    lineno: int
    text: str
    img_id: str
    img_path: Optional[str]
    seg_path: Optional[str]


def parse_split_file(path: str) -> List[SplitLine]:
    """Read a split file and return its entries in file order.

    Two line formats are accepted, also mixed:

    - one image id per line (``ADE_train_00000001``), as written by the
      converters' ``split`` commands;
    - UniMatch's ``<image path> <label path>``, relative to the dataset root
      (``train2017/000000177254.jpg masks/000000177254.png``). A line holding
      a single path gives the stem of that path as its id.

    Blank lines are skipped and a missing final newline is fine. More than two
    fields on a line, or an image listed twice, raise ``ValueError`` naming the
    file and the line.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'split file {path} does not exist')
    entries, seen = [], {}
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            text = line.strip()
            if not text:
                continue
            fields = text.split()
            if len(fields) > 2:
                raise ValueError(
                    f'split file {path} line {lineno} ({text!r}) has '
                    f'{len(fields)} fields; expected an image id or '
                    '"<image path> <label path>"')
            token = fields[0]
            is_path = len(fields) == 2 or '/' in token or \
                '.' in osp.basename(token)
            img_id = osp.splitext(osp.basename(token))[0] if is_path else token
            if img_id in seen:
                raise ValueError(f'split file {path} line {lineno}: id '
                                 f'{img_id!r} is listed twice (first on line '
                                 f'{seen[img_id]})')
            seen[img_id] = lineno
            if len(fields) == 2:
                entries.append(SplitLine(lineno, text, img_id, fields[0],
                                         fields[1]))
            else:
                entries.append(SplitLine(lineno, text, img_id, None, None))
    if not entries:
        raise ValueError(f'split file {path} lists no image id')
    return entries


def read_split_file(path: str) -> List[str]:
    """Read a split file and return its image ids in file order.

    See :func:`parse_split_file` for the accepted formats; a UniMatch line
    gives the stem of its image path. Duplicated ids raise.
    """
    return [e.img_id for e in parse_split_file(path)]


def write_split_file(path: str, ids: Iterable[str]) -> None:
    """Write ``ids`` sorted, one per line, atomically to ``path``."""
    text = ''.join(f'{i}\n' for i in sorted(ids))
    with atomic_write(path, 'wb') as f:
        f.write(text.encode('utf-8'))


# ---------------------------------------------------------------------------
# Safe pickle loading (RefCOCO ``refs(unc).p``)
# ---------------------------------------------------------------------------

_SAFE_BUILTINS = frozenset({
    'list', 'dict', 'tuple', 'set', 'frozenset', 'str', 'bytes', 'bytearray',
    'int', 'float', 'complex', 'bool'
})


class _BuiltinsOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only plain builtin container/scalar types."""

    source = '<pickle>'

    def find_class(self, module, name):
        if module in ('builtins', '__builtin__') and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f'refusing to load global {module}.{name} from {self.source}: '
            'only builtin lists, dicts, strings and numbers are allowed')


def safe_pickle_load(path: str):
    """Load a pickle that may hold only builtin lists/dicts/strings/numbers.

    Any other global (a class, a function such as ``os.system``) raises
    ``pickle.UnpicklingError`` naming the global and the file, so a tampered
    ``refs(unc).p`` cannot run code. Python 2 byte strings are decoded as
    latin-1 like ``pickle.load(..., encoding='latin1')``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'pickle file {path} does not exist')
    with open(path, 'rb') as f:
        unpickler = _BuiltinsOnlyUnpickler(f, encoding='latin1')
        unpickler.source = path
        return unpickler.load()


# ---------------------------------------------------------------------------
# Masks and PNGs
# ---------------------------------------------------------------------------


def coco_segm_to_mask(segm, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` (polygons, RLE or uncompressed RLE).

    Returns an ``(height, width)`` uint8 array of 0/1, as
    ``pycocotools.coco.COCO.annToMask`` does.
    """
    import warnings

    from pycocotools import mask as mask_utils
    if isinstance(segm, list):
        segm = [p for p in segm if len(p) >= 6]
        if not segm:
            return np.zeros((height, width), np.uint8)
        rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
    elif isinstance(segm.get('counts'), list):
        rle = mask_utils.frPyObjects(segm, height, width)
    else:
        rle = segm
    with warnings.catch_warnings():  # numpy 2 copy-keyword notice
        warnings.simplefilter('ignore', DeprecationWarning)
        return mask_utils.decode(rle).astype(np.uint8)


def encode_png(array: np.ndarray, path_for_errors: str = '') -> bytes:
    """Encode a uint8 (H, W) or (H, W, 3) array as PNG bytes."""
    import cv2
    ok, buf = cv2.imencode('.png', np.ascontiguousarray(array))
    if not ok:
        raise RuntimeError(f'could not encode PNG for {path_for_errors}')
    return buf.tobytes()


def write_png(path: str, array: np.ndarray) -> None:
    """Write ``array`` as a PNG at ``path`` through :func:`atomic_write`."""
    data = encode_png(array, path)
    with atomic_write(path, 'wb') as f:
        f.write(data)


def read_image_checked(path: str, what: str = 'image') -> np.ndarray:
    """Decode an image or label file completely and return it as an array.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file for a corrupt or truncated one (PIL decodes every byte, so a
    truncated JPEG/PNG is caught instead of being silently grey-padded).
    """
    from PIL import Image
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what} file {path} does not exist')
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im)
    except Exception as e:  # PIL raises OSError / SyntaxError / ValueError
        raise ValueError(f'{what} file {path} is corrupt or truncated: '
                         f'{type(e).__name__}: {e}') from e


def image_size_checked(path: str, what: str = 'image') -> tuple:
    """Return ``(height, width)`` of a fully decodable image (see above)."""
    arr = read_image_checked(path, what)
    return arr.shape[:2]


# ---------------------------------------------------------------------------
# Verification of image/label pairs
# ---------------------------------------------------------------------------


class DatasetVerificationError(ValueError):
    """Raised when verification finds problems; the message lists each one."""


def _check_pair(args):
    """Check one (image, label) pair; return a per-pair report dict."""
    img_path, seg_path, num_classes, ignore_index, reduce_zero_label, \
        label_map = args
    rep = dict(img=img_path, seg=seg_path, errors=[], counts=None)
    try:
        img_hw = image_size_checked(img_path, 'image')
    except (FileNotFoundError, ValueError) as e:
        rep['errors'].append(str(e))
        img_hw = None
    if seg_path is None:
        return rep
    if not osp.isfile(seg_path):
        rep['errors'].append(f'label file {seg_path} for image {img_path} '
                             'does not exist (missing annotation)')
        return rep
    try:
        seg = read_image_checked(seg_path, 'label')
    except ValueError as e:
        rep['errors'].append(str(e))
        return rep
    if seg.ndim != 2:
        rep['errors'].append(f'label file {seg_path} has shape {seg.shape}; '
                             'expected a single-channel (H, W) map')
        return rep
    if img_hw is not None and tuple(seg.shape) != tuple(img_hw):
        rep['errors'].append(
            f'label file {seg_path} is {seg.shape[1]}x{seg.shape[0]} (WxH) '
            f'but its image {img_path} is {img_hw[1]}x{img_hw[0]}')
    seg = seg.astype(np.int64)
    if reduce_zero_label:  # as mmseg: 0 -> 255 (ignore), v -> v - 1
        seg = np.where((seg == 0) | (seg == 255), ignore_index, seg - 1)
    if label_map:
        mapped = seg.copy()
        for old, new in label_map.items():
            mapped[seg == old] = new
        seg = mapped
    bad = np.unique(seg[(seg != ignore_index) & ((seg < 0) |
                                                  (seg >= num_classes))])
    if bad.size:
        raw = bad + 1 if reduce_zero_label else bad
        rep['errors'].append(
            f'label file {seg_path} has values {raw.tolist()[:10]} outside '
            f'the class range (expected 0..{num_classes - 1 + int(reduce_zero_label)}'
            f' or ignore index {ignore_index})')
        return rep
    valid = seg[seg != ignore_index]
    rep['counts'] = np.bincount(valid, minlength=num_classes)[:num_classes]
    return rep


def verify_pairs(pairs: Sequence[tuple],
                 num_classes: int,
                 ignore_index: int = 255,
                 reduce_zero_label: bool = False,
                 label_map: Optional[Dict[int, int]] = None,
                 background_index: Optional[int] = None,
                 workers: int = 0,
                 desc: str = 'verify',
                 raise_on_error: bool = True) -> dict:
    """Check every (image path, label path) pair and summarise the labels.

    Each image must decode completely; each label must exist, decode, be
    single-channel, have its image's size and hold only values in
    ``0..num_classes-1`` (after ``reduce_zero_label``/``label_map``, as mmseg's
    ``LoadAnnotations`` applies them) or ``ignore_index``.

    Returns a dict with ``num_images``, ``pixel_histogram`` (pixels per class),
    ``image_histogram`` (images containing each class), ``images_without_labels``
    (images whose label holds no class pixel other than ``background_index``
    and ignore) and ``errors``. With ``raise_on_error`` (default) problems raise
    :class:`DatasetVerificationError` listing each file and what is wrong.
    """
    from tqdm import tqdm
    if not pairs:
        raise DatasetVerificationError(f'{desc}: no image found (empty dataset)')
    jobs = [(img, seg, num_classes, ignore_index, reduce_zero_label, label_map)
            for img, seg in pairs]
    if workers and workers > 1:
        from multiprocessing import Pool
        with Pool(workers) as pool:
            reports = list(tqdm(pool.imap(_check_pair, jobs, chunksize=16),
                                total=len(jobs), desc=desc))
    else:
        reports = [_check_pair(j) for j in tqdm(jobs, desc=desc,
                                                 disable=len(jobs) < 100)]
    pixel_hist = np.zeros(num_classes, np.int64)
    image_hist = np.zeros(num_classes, np.int64)
    errors, without = [], []
    for rep in reports:
        errors.extend(rep['errors'])
        if rep['counts'] is None:
            continue
        counts = rep['counts']
        pixel_hist += counts
        image_hist += counts > 0
        fg = counts.copy()
        if background_index is not None:
            fg[background_index] = 0
        if fg.sum() == 0:
            without.append(rep['img'])
    result = dict(
        num_images=len(pairs),
        pixel_histogram=pixel_hist.tolist(),
        image_histogram=image_hist.tolist(),
        images_without_labels=without,
        errors=errors)
    if errors and raise_on_error:
        shown = '\n  '.join(errors[:50])
        more = f'\n  ... and {len(errors) - 50} more' if len(errors) > 50 else ''
        raise DatasetVerificationError(
            f'{desc}: {len(errors)} problem(s) found:\n  {shown}{more}')
    return result


def format_histogram(classes: Sequence[str], image_hist: Sequence[int],
                     pixel_hist: Sequence[int]) -> str:
    """Render a per-class table (images containing the class, pixels)."""
    width = max([len(c) for c in classes] + [5])
    lines = [f'{"class":<{width}}  {"images":>8}  {"pixels":>12}']
    for c, n_img, n_pix in zip(classes, image_hist, pixel_hist):
        lines.append(f'{c:<{width}}  {n_img:>8}  {n_pix:>12}')
    return '\n'.join(lines)


def list_files(folder: str, suffix: str) -> List[str]:
    """Return the sorted file names in ``folder`` ending with ``suffix``."""
    if not osp.isdir(folder):
        raise FileNotFoundError(f'folder {folder} does not exist')
    return sorted(n for n in os.listdir(folder)
                  if n.endswith(suffix) and not n.startswith('.'))


__all__ = [
    'split_size', 'seeded_subset', 'read_split_file', 'write_split_file',
    'parse_split_file', 'SplitLine', 'missing_split_files',
    'safe_pickle_load', 'coco_segm_to_mask', 'encode_png', 'write_png',
    'read_image_checked', 'image_size_checked', 'verify_pairs',
    'DatasetVerificationError', 'format_histogram', 'list_files',
    'data_list_from_split'
]


def data_list_from_split(dataset, split_file: str,
                         unimatch_hint: str = '') -> List[dict]:
    """Build an mmseg ``data_list`` from a split file for a ``BaseSegDataset``.

    An id line takes its image (and, when ``seg_map_path`` is set, its label)
    from ``dataset.data_prefix`` with the dataset's suffixes. A UniMatch line
    ``<image path> <label path>`` is taken as it is, relative to
    ``dataset.data_root``: the line says where the label is.

    Every file named must exist; otherwise ``FileNotFoundError`` names the
    split file, the line and the path that was looked for, followed by
    ``unimatch_hint`` for a file named by a UniMatch line.
    """
    img_dir = dataset.data_prefix.get('img_path', '') or ''
    seg_dir = dataset.data_prefix.get('seg_map_path', None)
    root = dataset.data_root or ''
    def require(path, what, entry):
        hint = f'; {unimatch_hint}' if unimatch_hint and \
            entry.img_path is not None else ''
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'split file {split_file} line {entry.lineno} '
                f'({entry.text!r}) names id {entry.img_id!r} but its {what} '
                f'{path} does not exist{hint}')
        return path

    data_list = []
    for entry in parse_split_file(split_file):
        if entry.img_path is not None:
            info = dict(
                img_path=require(osp.join(root, entry.img_path), 'image',
                                 entry),
                seg_map_path=require(osp.join(root, entry.seg_path), 'label',
                                     entry))
        else:
            info = dict(img_path=require(
                osp.join(img_dir, entry.img_id + dataset.img_suffix), 'image',
                entry))
            if seg_dir:
                info['seg_map_path'] = require(
                    osp.join(seg_dir, entry.img_id + dataset.seg_map_suffix),
                    'label', entry)
        info['label_map'] = dataset.label_map
        info['reduce_zero_label'] = dataset.reduce_zero_label
        info['seg_fields'] = []
        data_list.append(info)
    return data_list


def missing_split_files(split_file: str, data_root: str) -> List[str]:
    """List the image/label paths of a UniMatch split that are not under ``data_root``.

    Each problem reads ``line <n>: <path> does not exist``. Id-only lines are
    not checked (their folders depend on the dataset's ``data_prefix``).
    """
    missing = []
    for entry in parse_split_file(split_file):
        for rel in (entry.img_path, entry.seg_path):
            if rel is not None and not osp.isfile(osp.join(data_root, rel)):
                missing.append(f'line {entry.lineno}: '
                               f'{osp.join(data_root, rel)} does not exist')
    return missing
