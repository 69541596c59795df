"""A generated referring task in RefCOCO's on-disk layout: "the red square", "the circle on the left".

Each image holds two shapes (a square or a disc), one in the left half and one
in the right half, in two different colours (``red``, ``green``, ``blue``) on a
grey, slightly noisy background. Each shape is one referred object with three
expressions that name it unambiguously: ``the <colour> <shape>``, ``the <shape>
on the <side>`` and ``the <colour> one``. Which of the two objects a sentence
means is only known from its words, so a model that does not read the text can
at best segment both or guess one: EVF-SAM's learning test.

:func:`write_referring_shapes` writes the ``refer`` toolkit's layout that
:class:`~mmsamptx.datasets.RefCOCODataset` reads::

    <root>/refcoco/refs(unc).p + instances.json       (polygons, COCO style)
    <root>/images/train2014/COCO_train2014_<id>.jpg
    <root>/sentencepiece.bpe.model                    (a tiny tokenizer for tiny models)

The sentencepiece model is trained on the task's words (XLM-R's unk/bos/eos
= 0/1/2, as BEiT-3's ``beit3.spm``), so a tiny EVF-SAM reads the task with
:class:`~mmsamptx.models.text_encoders.beit3_tokenizer.BEiT3Tokenizer`
without the real 64,000-piece file.
"""
import io
import json
import os.path as osp
import pickle
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from ..utils import atomic_write

COLOURS = {'red': (205, 45, 40), 'green': (45, 170, 60), 'blue': (45, 70, 205)}
SHAPES = ('square', 'circle')
SIDES = ('left', 'right')
#: COCO category ids given to the shapes in instances.json.
CATEGORY_IDS = {'square': 1, 'circle': 2}


def _polygon(shape: str, cx: float, cy: float, r: float) -> List[float]:
    """COCO polygon [x0, y0, x1, y1, ...] of a square (half-side r) or a 32-gon disc (radius r)."""
    if shape == 'square':
        pts = [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    else:
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        pts = list(zip(cx + r * np.cos(a), cy + r * np.sin(a)))
    return [float(round(v, 2)) for p in pts for v in p]


def expressions_of(colour: str, shape: str, side: str) -> List[str]:
    """The three sentences that name one object of an image."""
    return [f'the {colour} {shape}', f'the {shape} on the {side}', f'the {colour} one']


def referring_shapes_sample(rng: np.random.Generator, size: int = 64
                            ) -> Tuple[np.ndarray, List[Dict]]:
    """One image and its two objects.

    Returns:
        image: (size, size, 3) uint8 RGB.
        objects: two dicts (left, right) with ``mask`` (size, size) bool,
        ``polygon`` (COCO), ``colour``, ``shape``, ``side`` and ``sentences``.
    """
    from ..datasets.utils import coco_segm_to_mask
    img = np.full((size, size, 3), 128.0) + rng.normal(0, 6, (size, size, 3))
    colours = rng.choice(list(COLOURS), 2, replace=False)
    objects = []
    for k, side in enumerate(SIDES):
        shape = SHAPES[rng.integers(2)]
        r = rng.uniform(0.12, 0.18) * size
        cx = rng.uniform(r + 1, size / 2 - r - 1) + k * size / 2
        cy = rng.uniform(r + 1, size - r - 1)
        poly = _polygon(shape, cx, cy, r)
        mask = coco_segm_to_mask([poly], size, size).astype(bool)
        img[mask] = np.array(COLOURS[colours[k]]) + rng.normal(0, 6, (int(mask.sum()), 3))
        objects.append(dict(mask=mask, polygon=poly, colour=str(colours[k]), shape=shape, side=side,
                            sentences=expressions_of(str(colours[k]), shape, side)))
    return np.clip(img, 0, 255).astype(np.uint8), objects


def all_expressions() -> List[str]:
    """Every sentence the task can produce."""
    return [s for c in COLOURS for sh in SHAPES for side in SIDES for s in expressions_of(c, sh, side)]


def write_shapes_tokenizer(path: str, vocab_size: int = 60) -> str:
    """Train a sentencepiece model on the task's sentences and write it to ``path`` atomically."""
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(all_expressions() * 10), model_writer=buf,
                                   vocab_size=vocab_size, character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2)
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path


def write_referring_shapes(root: str, splits: Dict[str, int] = None, size: int = 64,
                           seed: int = 0, dataset: str = 'refcoco', split_by: str = 'unc') -> str:
    """Write ``splits`` (split name -> number of images) in the refer layout under ``root``,
    and the task's tokenizer as ``<root>/sentencepiece.bpe.model``.

    Every file is written atomically; the same seed gives the same files.
    Returns ``root``.
    """
    splits = splits or dict(train=16, val=4)
    rng = np.random.default_rng(seed)
    images, anns, refs = [], [], []
    image_id = ann_id = ref_id = sent_id = 0
    for split, n in splits.items():
        for _ in range(n):
            image_id += 1
            img, objects = referring_shapes_sample(rng, size)
            name = f'COCO_train2014_{image_id:012d}.jpg'
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format='JPEG', quality=95)
            with atomic_write(osp.join(root, 'images', 'train2014', name)) as f:
                f.write(buf.getvalue())
            images.append(dict(id=image_id, file_name=name, height=size, width=size))
            for obj in objects:
                ann_id += 1
                ref_id += 1
                ys, xs = np.nonzero(obj['mask'])
                anns.append(dict(id=ann_id, image_id=image_id, category_id=CATEGORY_IDS[obj['shape']],
                                 iscrowd=0, segmentation=[obj['polygon']], area=float(obj['mask'].sum()),
                                 bbox=[float(xs.min()), float(ys.min()), float(np.ptp(xs) + 1),
                                       float(np.ptp(ys) + 1)]))
                sentences = []
                for s in obj['sentences']:
                    sent_id += 1
                    sentences.append(dict(sent=s, raw=s, tokens=s.split(), sent_id=sent_id))
                refs.append(dict(ref_id=ref_id, ann_id=ann_id, image_id=image_id, split=split,
                                 category_id=CATEGORY_IDS[obj['shape']], file_name=name,
                                 sent_ids=[s['sent_id'] for s in sentences], sentences=sentences))
    folder = osp.join(root, dataset)
    with atomic_write(osp.join(folder, f'refs({split_by}).p')) as f:
        f.write(pickle.dumps(refs, protocol=2))
    categories = [dict(id=i, name=n, supercategory='shape') for n, i in CATEGORY_IDS.items()]
    with atomic_write(osp.join(folder, 'instances.json')) as f:
        f.write(json.dumps(dict(images=images, annotations=anns, categories=categories)).encode())
    write_shapes_tokenizer(osp.join(root, 'sentencepiece.bpe.model'))
    return root
