"""Picture in, masks out: a trained model behind one ``predict(images, texts=...)`` call.

::

    from mmsamptx.apis import TextSAM
    model = TextSAM('samptx_ade20k_1-64', checkpoint='best.pth')      # a config path or model-zoo name
    p = model.predict('room.jpg', texts=['chair', 'table'])[0]        # Prediction: masks, scores, semantic
"""
import os.path as osp
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import load_trained_checkpoint
from .errors import InputError
from .images import load_image
from .model_zoo import resolve_config
from .prediction import Prediction

__all__ = ['TextSAM', 'build_model']


def build_model(config, cfg_options: Optional[dict] = None):
    """(model, cfg): the config's model built (no weights read), from a path, a model-zoo
    name or a :class:`mmengine.Config`."""
    import mmsamptx  # noqa: F401  (registration, safe loading)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    if isinstance(config, Config):
        cfg = config
    else:
        path = resolve_config(config)
        try:
            cfg = Config.fromfile(path)
        except (SyntaxError, FileNotFoundError, KeyError, ImportError) as e:
            raise InputError(f'config {path} cannot be read: {type(e).__name__}: {e}') from None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise InputError(f'config {getattr(cfg, "filename", config)} defines no model')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmsamptx.engine import unknown_type_hint
    with unknown_type_hint(getattr(cfg, 'filename', None)):
        model = MODELS.build(cfg.model)
    return model, cfg


@dataclass
class _Slot:
    """One mask to predict: its text and prompts in original-image pixels."""
    label: str
    text: Optional[str] = None
    points: Optional[np.ndarray] = None   # (n, 2) xy
    point_labels: Optional[np.ndarray] = None  # (n,)
    box: Optional[np.ndarray] = None      # (4,) xyxy

    @property
    def signature(self) -> Tuple[bool, bool]:
        return self.points is not None, self.box is not None


class TextSAM:
    """A trained mmsamptx model that takes images and class names (or points, boxes,
    referring expressions) and returns masks.

    Args:
        config: a config file, a model-zoo name (a config's stem, e.g.
            ``'samptx_ade20k_1-64'``; :func:`mmsamptx.apis.list_models`) or an
            :class:`mmengine.Config`.
        checkpoint: a full checkpoint (as ``tools/train.py`` writes) or an
            adapter-only file (``tools/export_adapters.py``). None: the model's own
            ``init_weights()`` (the official SAM / CLIP files).
        device: e.g. ``'cpu'`` or ``'cuda:0'``.
        allow_partial: load a checkpoint whose keys differ from the model's (the rest
            keeps its initial weights, with a warning); by default that is an error.
        cfg_options: config overrides, as ``--cfg-options``.

    Attributes:
        modes: what :meth:`predict` accepts for this model, of ``'text'``,
            ``'points'``, ``'boxes'``, ``'expression'``.
        vocabulary: the names ``texts`` may hold (a closed-vocabulary model), or
            None where any name works (the text tower encodes it).
    """

    def __init__(self, config: Any, checkpoint: Optional[str] = None, device: str = 'cpu',
                 allow_partial: bool = False, cfg_options: Optional[dict] = None) -> None:
        self.model, self.cfg = build_model(config, cfg_options)
        filename = getattr(self.cfg, 'filename', None)
        self.name = osp.splitext(osp.basename(filename))[0] if filename else type(self.model).__name__
        if checkpoint is None:
            self.model.init_weights()
        else:
            load_trained_checkpoint(self.model, checkpoint, allow_partial, config_name=self.name)
        self.model = self.model.to(device).eval()
        self.device = device
        self._pipeline = None

    # ---------------------------------------------------------------- what it takes
    @property
    def is_referring(self) -> bool:
        """Whether the model segments referring expressions (EVF-SAM's ``predict_expressions``)."""
        return hasattr(self.model, 'predict_expressions')

    @property
    def reads_text(self) -> bool:
        return bool(getattr(self.model, 'uses_text', False))

    @property
    def prompt_free(self) -> bool:
        """A model without text driven by learned decoder prompt tokens (PTSAM)."""
        head = getattr(self.model, 'decode_head', None)
        return not self.reads_text and bool(getattr(head, 'has_prompt_tokens', False))

    @property
    def modes(self) -> Tuple[str, ...]:
        if self.is_referring:
            return ('expression',)
        if self.reads_text or self.prompt_free:
            return ('text', 'points', 'boxes')
        return ('points', 'boxes')

    @property
    def class_names(self) -> List[str]:
        return list(getattr(self.model, 'class_names', []))

    @property
    def vocabulary(self) -> Optional[List[str]]:
        if self.is_referring:
            return None
        if not self.reads_text:
            if self.prompt_free:
                return [self.class_names[c] for c in self.model.target_classes(self.model.test_cfg)]
            return self.class_names
        guide = getattr(self.model, 'guide', None)
        if guide is not None and getattr(guide, 'text_encoder', True) is None:
            # deployment mode: the text features exported once are all the names it knows
            path = guide.text_features
            if not osp.isfile(path):
                raise InputError(f'text_features file {path} of {self.name} does not exist')
            table = torch.load(path, map_location='cpu', weights_only=True).get('features', {})
            return list(table)
        return None

    # ------------------------------------------------------------------- predict
    @torch.no_grad()
    def predict(self, images, texts: Union[None, str, Sequence[str]] = None,
                points=None, point_labels=None, boxes=None,
                expressions: Union[None, str, Sequence[str]] = None) -> List[Prediction]:
        """Masks of every text (or expression, or prompt) in each image.

        Args:
            images: one image or a list: file paths, (H, W, 3) uint8 RGB arrays, PIL images.
            texts: class names; one mask each, all of an image's names run as one batch
                (in chunks of the config's ``test_cfg.class_chunk``).
            points: (x, y) pixels of the image: a flat list, shared by every text (or one
                mask without texts), or one list per text. ``point_labels``: 1 positive
                (default), 0 negative, in the same layout. Needs one image.
            boxes: (x0, y0, x1, y1) pixels: one per text (or one shared), or without
                texts one mask per box. Needs one image.
            expressions: referring expressions, for an EVF-SAM model.

        Returns:
            One :class:`Prediction` per image, in order.
        """
        items = list(images) if isinstance(images, (list, tuple)) else [images]
        if not items:
            raise InputError('no image given')
        if (points is not None or boxes is not None) and len(items) > 1:
            raise InputError(f'points and boxes are pixels of one image, but {len(items)} images '
                             'were given: pass one image per call with prompts')
        texts = _names(texts, 'texts')
        expressions = _names(expressions, 'expressions')
        if expressions is not None:
            if not self.is_referring:
                raise InputError(f'this model ({self.name}) is prompted by class names: pass '
                                 'texts=[...] (--text), not expressions; referring expressions '
                                 'need an EVF-SAM model')
            if texts is not None or points is not None or boxes is not None:
                raise InputError('expressions are used alone: no texts, points or boxes with them')
        if self.is_referring:
            phrases = expressions if expressions is not None else texts
            if phrases is None:
                raise InputError(f'this model ({self.name}) segments referring expressions: pass '
                                 'expressions=[...] (--expression)')
            if points is not None or boxes is not None:
                raise InputError(f'this model ({self.name}) takes expressions, not points or boxes')
            return [self._predict_expressions(load_image(x), phrases) for x in items]
        slots = self._slots(texts, points, point_labels, boxes)
        return [self._predict_image(load_image(x), slots) for x in items]

    __call__ = predict

    # ------------------------------------------------------------------ prompts
    def _slots(self, texts, points, point_labels, boxes) -> List[_Slot]:
        """The masks to predict, validated against what the model takes."""
        pts, lbls, nested = _points(points, point_labels)
        bxs = _boxes(boxes)
        if texts is not None:
            n = len(texts)
            labels, slot_texts = list(texts), list(texts)
        elif bxs is not None:
            n = len(bxs)
            labels, slot_texts = [f'box {k + 1}' for k in range(n)], [None] * n
        elif pts is not None:
            n = len(pts) if nested else 1
            labels = ['points'] if n == 1 else [f'points {k + 1}' for k in range(n)]
            slot_texts = [None] * n
        elif self.prompt_free:
            slot_texts = labels = self.vocabulary
            n = len(labels)
        else:
            raise InputError(f'nothing to segment: this model ({self.name}) takes '
                             + ', '.join(self.modes) + ' (texts=, points=, boxes=)')
        if nested and len(pts) != n:
            raise InputError(f'{len(pts)} lists of points for {n} masks: give one list per '
                             'text (or box), or one flat list shared by all')
        if bxs is not None and len(bxs) not in (1, n):
            raise InputError(f'{len(bxs)} boxes for {n} texts: give one box per text, or one')
        slots = []
        for k in range(n):
            slot = _Slot(labels[k], slot_texts[k])
            if pts is not None:
                slot.points = pts[k] if nested else pts[0]
                slot.point_labels = lbls[k] if nested else lbls[0]
            if bxs is not None:
                slot.box = bxs[k] if len(bxs) == n else bxs[0]
            slots.append(slot)
        self._check_texts(slots)
        return slots

    def _check_texts(self, slots: List[_Slot]) -> None:
        texts = [s.text for s in slots if s.text is not None]
        vocab = self.vocabulary
        if vocab is not None:
            unknown = [t for t in texts if t not in vocab]
            if unknown:
                plural = 'es' if len(vocab) != 1 else ''
                raise InputError(f'unknown class {unknown[0]!r}: {self.name} has a closed vocabulary '
                                 f'of {len(vocab)} class{plural} ({_short_list(vocab)})')
        if self.reads_text:
            if any(s.text is None for s in slots):
                raise InputError(f'this model ({self.name}) is prompted by class names: pass '
                                 'texts=[...] (--text) with the points or boxes')
        elif not self.prompt_free and any(s.points is None and s.box is None for s in slots):
            raise InputError(f'this model ({self.name}) reads no text: give points or boxes '
                             '(class names then only label the masks)')

    # ---------------------------------------------------------------- inference
    def _test_pipeline(self):
        """The config's test pipeline, reading an array instead of a file and no annotation."""
        if self._pipeline is None:
            from mmcv.transforms import Compose
            steps = _find_pipeline(self.cfg)
            if steps is None:
                size = self.model.decode_head.image_size
                steps = [dict(type='Resize', scale=(size, size), keep_ratio=True),
                         dict(type='PackSegInputs')]
            kept = [dict(type='LoadImageFromNDArray')]
            for step in steps:
                kind = str(step.get('type', ''))
                if kind.startswith('LoadImage') or 'Annotation' in kind:
                    continue
                kept.append(dict(step))
            self._pipeline = Compose(kept)
        return self._pipeline

    def _inputs(self, rgb: np.ndarray):
        """(inputs (1, 3, S, S), data sample) through the test pipeline and the preprocessor."""
        # mmseg's pipelines hold BGR (as mmcv reads files); the preprocessor turns it to RGB
        data = self._test_pipeline()(dict(img=np.ascontiguousarray(rgb[..., ::-1])))
        data = self.model.data_preprocessor(
            dict(inputs=[data['inputs']], data_samples=[data['data_samples']]), False)
        return data['inputs'], data['data_samples'][0]

    def _text_embeddings(self, texts: List[str]) -> torch.Tensor:
        """(M, D) embeddings: the vocabulary's own rows for its names, others encoded now."""
        model = self.model
        vocab = model.class_names if getattr(model, 'text_key', None) is None else []
        table = model.class_embeddings() if any(t in vocab for t in texts) else None
        new = [t for t in dict.fromkeys(texts) if t not in vocab]
        encoded = {}
        if new:
            try:
                rows = model.encode_text(new)
            except KeyError as e:
                raise InputError(f'unknown class: {e.args[0] if e.args else e}') from None
            encoded = {t: rows[i] for i, t in enumerate(new)}
        device = next(model.decode_head.parameters()).device
        return torch.stack([table[vocab.index(t)] if t in vocab else encoded[t]
                            for t in texts]).to(device)

    def _predict_image(self, rgb: np.ndarray, slots: List[_Slot]) -> Prediction:
        """One image: every slot's mask logits at the image size, as the segmentor's
        ``_predict_one`` computes them (same pipeline, chunks, upsampling)."""
        model = self.model
        h, w = rgb.shape[:2]
        for s in slots:
            _check_inside(s, w, h)
        inputs, ds = self._inputs(rgb)
        meta = ds.metainfo
        img_h, img_w = meta.get('img_shape', inputs.shape[-2:])[:2]
        w_scale, h_scale = meta.get('scale_factor', (1.0, 1.0))
        scale = torch.tensor([w_scale, h_scale], dtype=torch.float32)
        device = inputs.device
        texts = [s.text for s in slots]
        embeds = self._text_embeddings(texts) if self.reads_text else None
        if model.backbone.is_conditioned:
            shared, emb = model.encode_shared(inputs), None
        else:
            shared, emb = None, model.image_embeddings(inputs, None)
        clip_tokens = model.guide.encode_image(inputs) if model.guide is not None else None
        chunk = int(model.test_cfg.get('class_chunk') or len(slots))
        logits = [None] * len(slots)
        scores = [None] * len(slots)
        for group in _groups(slots, chunk):
            idx = torch.tensor(group, device=device)
            zeros = torch.zeros_like(idx)
            text = embeds[idx] if embeds is not None else None
            cond, g = model.guidance(inputs, zeros, text, clip_tokens)
            if shared is not None:
                emb = model.encode_conditioned(shared, zeros, cond)
            first = slots[group[0]]
            pts = lbl = box = masks = None
            if first.points is not None:
                pts, lbl = _stack_points([slots[k] for k in group], scale)
                pts, lbl = pts.to(device), lbl.to(device)
            if first.box is not None:
                box = torch.stack([torch.as_tensor(slots[k].box, dtype=torch.float32) * scale.repeat(2)
                                   for k in group]).to(device)
            if g is not None:
                if pts is None and box is None and model.test_cfg['point_source'] == 'similarity':
                    pts = torch.stack([model._similarity_points(
                        model.test_sampler, g.point_region[j, 0],
                        model.test_sampler.generator_for(f'image:{slots[k].label}'),
                        f'{slots[k].label!r}') for j, k in enumerate(group)]).to(device)
                if model.test_cfg['mask_prompt']:
                    masks = g.dense_prompt
                text = g.text
            if all(t is None for t in (pts, box, text, masks)):  # prompt tokens alone (PTSAM)
                emb = emb.expand(len(group), -1, -1, -1)
            out, iou = model.decode_head(emb, pts, lbl, box, text, masks=masks)
            mask, score = model.decode_head.select_mask(out, iou)
            mask = F.interpolate(mask[:, None], size=inputs.shape[-2:], mode='bilinear',
                                 align_corners=False)[:, :, :img_h, :img_w]
            mask = F.interpolate(mask, size=(h, w), mode='bilinear', align_corners=False)[:, 0]
            for j, k in enumerate(group):
                logits[k], scores[k] = mask[j], score[j]
        logit = torch.stack(logits).float()
        score = torch.stack(scores).float()
        prompted = any(s.points is not None or s.box is not None for s in slots)
        rank = logit if prompted else logit.sigmoid() * score[:, None, None]
        best = rank.argmax(dim=0)
        won = torch.gather(logit > 0, 0, best[None])[0]
        semantic = torch.where(won, best + 1, torch.zeros_like(best))
        return Prediction(
            image=rgb, masks=(logit > 0).cpu().numpy(), scores=score.cpu().numpy(),
            labels=[s.label for s in slots], semantic=semantic.long().cpu().numpy(),
            logits=logit.cpu().numpy(),
            points=[tuple(map(float, p)) for s in slots if s.points is not None for p in s.points],
            boxes=list(dict.fromkeys(tuple(map(float, s.box)) for s in slots if s.box is not None)))

    def _predict_expressions(self, rgb: np.ndarray, expressions: List[str]) -> Prediction:
        """One image through the model's ``predict_expressions`` (EVF-SAM)."""
        out = self.model.predict_expressions(rgb, list(expressions))
        masks = np.asarray(_numpy(out['masks'])).astype(bool)
        scores = np.asarray(_numpy(out['scores']), dtype=np.float32).reshape(-1)
        semantic = np.zeros(rgb.shape[:2], np.int64)
        if len(masks):
            rank = np.where(masks, scores[:, None, None], -np.inf)
            best = rank.argmax(0)
            semantic = np.where(masks.any(0), best + 1, 0).astype(np.int64)
        return Prediction(image=rgb, masks=masks, scores=scores, labels=list(expressions),
                          semantic=semantic)


# ---------------------------------------------------------------------- helpers
def _numpy(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def _short_list(names: Sequence[str], limit: int = 12) -> str:
    more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def _names(value, what: str) -> Optional[List[str]]:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad or not names:
        raise InputError(f'{what} must be non-empty strings, got {bad[0] if bad else names!r}')
    return [n.strip() for n in names]


def _points(points, point_labels):
    """(list of (n, 2) arrays, list of (n,) label arrays, nested?) or (None, None, False)."""
    if point_labels is not None and points is None:
        raise InputError('point_labels given without points')
    if points is None:
        return None, None, False
    try:
        raw = list(points)
        nested = bool(raw) and np.ndim(raw[0]) >= 1 and len(raw[0]) > 0 and np.ndim(raw[0][0]) >= 1
        groups = raw if nested else [raw]
        pts = [np.asarray(g, dtype=np.float32).reshape(-1, 2) for g in groups]
    except (TypeError, ValueError):
        raise InputError(f'points must be (x, y) pairs in image pixels, got {points!r}') from None
    if any(len(p) == 0 for p in pts):
        raise InputError('an empty list of points: give at least one (x, y)')
    if point_labels is None:
        lbls = [np.ones(len(p), np.int64) for p in pts]
    else:
        lraw = list(point_labels)
        lgroups = lraw if nested else [lraw]
        lbls = [np.asarray(g, dtype=np.int64).reshape(-1) for g in lgroups]
        if len(lbls) != len(pts) or any(len(a) != len(b) for a, b in zip(lbls, pts)):
            raise InputError(f'point_labels {point_labels!r} do not match the points {points!r}')
        if any(not set(a.tolist()) <= {0, 1} for a in lbls):
            raise InputError(f'point_labels must be 1 (positive) or 0 (negative), got {point_labels!r}')
    return pts, lbls, nested


def _boxes(boxes) -> Optional[List[np.ndarray]]:
    if boxes is None:
        return None
    try:
        arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    except (TypeError, ValueError):
        raise InputError(f'boxes must be (x0, y0, x1, y1) in image pixels, got {boxes!r}') from None
    if len(arr) == 0:
        raise InputError('an empty list of boxes')
    bad = [b for b in arr if not (b[2] > b[0] and b[3] > b[1])]
    if bad:
        raise InputError(f'box {tuple(float(v) for v in bad[0])} is not (x0, y0, x1, y1) with '
                         'x1 > x0 and y1 > y0')
    return list(arr)


def _check_inside(slot: _Slot, w: int, h: int) -> None:
    if slot.points is not None:
        for x, y in slot.points.tolist():
            if not (0 <= x < w and 0 <= y < h):
                raise InputError(f'point ({x:g}, {y:g}) lies outside the {w}x{h} image')
    if slot.box is not None:
        x0, y0, x1, y1 = slot.box.tolist()
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            raise InputError(f'box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) lies outside the {w}x{h} image')


def _groups(slots: List[_Slot], chunk: int) -> List[List[int]]:
    """Consecutive slots with the same kinds of prompt, at most ``chunk`` per group."""
    groups: List[List[int]] = []
    for k, s in enumerate(slots):
        if groups and len(groups[-1]) < chunk and slots[groups[-1][0]].signature == s.signature:
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def _stack_points(slots: List[_Slot], scale: torch.Tensor):
    """(M, n, 2) points in input pixels and (M, n) labels; shorter sets padded with SAM's
    not-a-point label -1."""
    n = max(len(s.points) for s in slots)
    pts = torch.zeros(len(slots), n, 2)
    lbl = torch.full((len(slots), n), -1, dtype=torch.long)
    for j, s in enumerate(slots):
        pts[j, :len(s.points)] = torch.from_numpy(s.points) * scale
        lbl[j, :len(s.points)] = torch.from_numpy(s.point_labels)
    return pts, lbl


def _find_pipeline(cfg) -> Optional[list]:
    """The test dataset's pipeline (through dataset wrappers), else ``cfg.test_pipeline``."""
    loader = cfg.get('test_dataloader') or cfg.get('val_dataloader')
    ds = loader.get('dataset') if loader else None
    while ds is not None:
        if ds.get('pipeline'):
            return list(ds['pipeline'])
        ds = ds.get('dataset')
    steps = cfg.get('test_pipeline')
    return list(steps) if steps else None
