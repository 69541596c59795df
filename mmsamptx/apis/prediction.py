"""What :meth:`TextSAM.predict` returns for one image, and its colour-coded overlay."""
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: Distinct colours (RGB) for labels 1, 2, ...; cycled beyond their number.
PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (255, 225, 25), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
           (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
           (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128))


def colour_of(k: int) -> Tuple[int, int, int]:
    """The RGB colour of label index ``k`` (0-based: ``labels[k]``)."""
    return PALETTE[k % len(PALETTE)]


@dataclass
class Prediction:
    """The masks of one image.

    Attributes:
        image: (H, W, 3) uint8 RGB, the image as the model saw it (before resizing).
        masks: (N, H, W) bool, one per text / expression / prompt.
        scores: (N,) float32, the decoder's predicted IoU of each mask.
        labels: N names (the texts, expressions, or 'points' / 'box k').
        semantic: (H, W) int64, 0 where no mask claims the pixel, k where ``labels[k-1]``
            wins it (highest ``sigmoid(logit) * score`` for text prompts, highest logit
            with points or boxes, as the segmentor's 'text' / 'prompted' inference).
        logits: (N, H, W) float32 mask logits at the image size (``masks = logits > 0``),
            or None where the model gives none.
        points: the (x, y) point prompts, drawn on the overlay.
        boxes: the (x0, y0, x1, y1) box prompts, drawn on the overlay.
    """
    image: np.ndarray
    masks: np.ndarray
    scores: np.ndarray
    labels: List[str]
    semantic: np.ndarray
    logits: Optional[np.ndarray] = None
    points: List[Tuple[float, float]] = field(default_factory=list)
    boxes: List[Tuple[float, float, float, float]] = field(default_factory=list)

    def overlay(self, alpha: float = 0.5, legend: bool = True) -> np.ndarray:
        """(H, W', 3) uint8 RGB: the image with each label's pixels tinted in its colour,
        mask outlines, prompts marked, and (``legend``) a panel on the right naming each
        colour's label and score (W' = W + the panel's width)."""
        return render_overlay(self.image, self.semantic, self.labels, self.scores,
                              self.points, self.boxes, alpha, legend)


def render_overlay(image: np.ndarray, semantic: np.ndarray, labels: Sequence[str],
                   scores: Sequence[float], points=(), boxes=(), alpha: float = 0.5,
                   legend: bool = True) -> np.ndarray:
    """See :meth:`Prediction.overlay`."""
    import cv2
    out = image.astype(np.float32).copy()
    for k in range(len(labels)):
        region = semantic == k + 1
        if region.any():
            out[region] = out[region] * (1 - alpha) + np.array(colour_of(k), np.float32) * alpha
    out = out.round().astype(np.uint8)
    for k in range(len(labels)):
        region = (semantic == k + 1).astype(np.uint8)
        if region.any():
            contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(out, contours, -1, colour_of(k), 1)
    h, w = out.shape[:2]
    r = max(2, min(h, w) // 80)
    for x, y in points:
        cv2.circle(out, (int(round(x)), int(round(y))), r + 1, (0, 0, 0), -1)
        cv2.circle(out, (int(round(x)), int(round(y))), r, (0, 255, 0), -1)
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1), int(y1)), (0, 255, 0), max(1, r // 2))
    if not legend or not len(labels):
        return out
    return np.concatenate([out, _legend(h, labels, scores)], axis=1)


def _legend(h: int, labels: Sequence[str], scores: Sequence[float]) -> np.ndarray:
    """(h, w_panel, 3) white panel: a colour swatch, the label and its score per row,
    in as many columns as the rows need."""
    import cv2
    n = len(labels)
    row = int(np.clip(h // max(n, 1), 14, 28))
    per_col = max(1, h // row)
    cols = -(-n // per_col)
    scale = row / 40
    texts = [f'{label} {float(s):.2f}' for label, s in zip(labels, scores)]
    text_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0] for t in texts)
    col_w = row + 6 + text_w + 8
    panel = np.full((h, cols * col_w, 3), 255, np.uint8)
    for k, text in enumerate(texts):
        c, i = divmod(k, per_col)
        x, y = c * col_w + 4, i * row
        cv2.rectangle(panel, (x, y + 3), (x + row - 6, y + row - 3), colour_of(k), -1)
        cv2.putText(panel, text, (x + row, y + int(row * 0.72)), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 0), 1, cv2.LINE_AA)
    return panel
