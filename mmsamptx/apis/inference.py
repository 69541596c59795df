"""Segment one image with a trained class-prompted SAM: a class name, and optionally points."""
import io
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmseg.structures import SegDataSample

from ..utils import atomic_write
from .checkpoint import load_trained_checkpoint
from .text_sam import build_model


def init_segmentor(config: Union[str, Config], checkpoint: Optional[str] = None,
                   device: str = 'cpu', cfg_options: Optional[dict] = None,
                   allow_partial: bool = False):
    """Build a :class:`ClassPromptedSAM` from a config (or model-zoo name) and load a
    trained checkpoint strictly (:func:`~mmsamptx.apis.load_trained_checkpoint`).

    Without ``checkpoint`` the model's own ``init_weights()`` runs (official SAM
    and CLIP weights, or random ones for architectures without weights).
    """
    model, cfg = build_model(config, cfg_options)
    if checkpoint is None:
        model.init_weights()
    else:
        load_trained_checkpoint(model, checkpoint, allow_partial)
    model.cfg = cfg
    return model.to(device).eval()


def _text_embedding(model, text: str) -> Optional[torch.Tensor]:
    """(1, D): the class's embedding, from the model's vocabulary or encoded on the fly."""
    if not model.uses_text:
        return None
    if text in model.class_names:
        return model.class_embeddings()[model.class_names.index(text)][None]
    device = next(model.decode_head.parameters()).device
    return model.text_encoder.encode([text]).to(device)


@torch.no_grad()
def segment(model, image: Union[str, np.ndarray], text: Optional[str] = None,
            points: Optional[Sequence[Tuple[float, float]]] = None,
            point_labels: Optional[Sequence[int]] = None) -> dict:
    """Mask of ``text`` (and/or the object under ``points``) in one image.

    Args:
        model: from :func:`init_segmentor`.
        image: a file path or a BGR uint8 array (H, W, 3).
        text: a class name; any name works with a text-conditioned model
            (names outside the training vocabulary are encoded on the fly).
        points: (x, y) in original image pixels; point_labels: 1 positive
            (default), 0 negative.

    Returns:
        ``dict(mask=(H, W) bool, logits=(H, W) float32, score=predicted IoU)``.
    """
    img = mmcv.imread(image) if isinstance(image, str) else image
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f'expected a colour image, got {image if isinstance(image, str) else img.shape}')
    h, w = img.shape[:2]
    if text is None and model.uses_text:
        raise ValueError('this model is prompted by class names: pass text')
    if points is None and not model.uses_text:
        raise ValueError('this model reads no text: pass at least one point')
    size = model.decode_head.image_size
    resized, scale = mmcv.imrescale(img, (size, size), return_scale=True)
    rh, rw = resized.shape[:2]
    ds = SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(rh, rw)))
    data = model.data_preprocessor(
        dict(inputs=[torch.from_numpy(resized).permute(2, 0, 1).contiguous()], data_samples=[ds]),
        False)
    inputs = data['inputs']
    pts = labels = None
    if points is not None:
        pts = torch.tensor(points, dtype=torch.float32).reshape(-1, 2)
        for x, y in pts.tolist():
            if not (0 <= x < w and 0 <= y < h):
                raise ValueError(f'point ({x:g}, {y:g}) lies outside the {w}x{h} image')
        labels = torch.tensor(point_labels if point_labels is not None else [1] * len(pts))
        if labels.shape != (len(pts),):
            raise ValueError(f'{len(labels)} point labels for {len(pts)} points')
        pts, labels = (pts * scale)[None].to(inputs.device), labels[None].to(inputs.device)
    emb = _text_embedding(model, text) if text is not None else None
    image_embeddings = model.encode_samples(inputs, torch.zeros(1, dtype=torch.long,
                                                                device=inputs.device), emb)
    logits, iou = model.decode_head(image_embeddings, pts, labels, None, emb)
    mask, score = model.decode_head.select_mask(logits, iou)
    mask = F.interpolate(mask[:, None], size=inputs.shape[-2:], mode='bilinear',
                         align_corners=False)[:, :, :rh, :rw]
    mask = F.interpolate(mask, size=(h, w), mode='bilinear', align_corners=False)[0, 0]
    logits_np = mask.float().cpu().numpy()
    return dict(mask=logits_np > 0, logits=logits_np, score=float(score[0]))


def save_overlay(image: Union[str, np.ndarray], mask: np.ndarray, path: str,
                 points: Optional[Sequence[Tuple[float, float]]] = None,
                 colour=(30, 144, 255), alpha: float = 0.5) -> str:
    """Write the image with ``mask`` tinted and ``points`` marked (PNG, atomically)."""
    img = (mmcv.imread(image) if isinstance(image, str) else image).copy()
    tint = np.array(colour[::-1], np.float32)  # RGB colour onto a BGR image
    img[mask] = (img[mask] * (1 - alpha) + tint * alpha).astype(np.uint8)
    import cv2
    for x, y in points or []:
        cv2.circle(img, (int(x), int(y)), 5, (0, 255, 0), -1)
        cv2.circle(img, (int(x), int(y)), 5, (0, 0, 0), 1)
    ok, buf = cv2.imencode('.png', img)
    with atomic_write(path) as f:
        f.write(buf.tobytes())
    return path


def save_mask(mask: np.ndarray, path: str) -> str:
    """Write a binary mask as a 0/255 PNG, atomically."""
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buf, format='PNG')
    with atomic_write(path) as f:
        f.write(buf.getvalue())
    return path
