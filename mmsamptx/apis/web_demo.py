"""A browser page for a trained model: upload an image, name classes (or click points, or type
an expression), get the colour-coded overlay and each mask's score. Built with gradio.

::

    from mmsamptx.apis import TextSAM
    from mmsamptx.apis.web_demo import build_demo
    build_demo(TextSAM('configs/demo/samptx_demo.py', 'work_dirs/demo/samptx/iter_300.pth')).launch()

``tools/web_demo.py`` is the command line (``make web`` serves the model ``make demo`` trained).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .errors import InputError

__all__ = ['build_demo', 'ui_modes', 'run_prediction', 'draw_points', 'MODE_LABELS']

#: The prompt choices the page offers, by what the model takes (:attr:`TextSAM.modes`).
MODE_LABELS = {
    'text': 'Class names',
    'text+points': 'Class names + clicked points',
    'points': 'Clicked points',
    'expression': 'Referring expression',
}


def ui_modes(model) -> List[str]:
    """The page's prompt modes for ``model`` (keys of :data:`MODE_LABELS`), best first."""
    modes = model.modes
    if 'expression' in modes:
        return ['expression']
    if 'text' in modes and model.reads_text:
        return ['text', 'text+points']
    if 'text' in modes:  # prompt-free (PTSAM): the names pick the learned classes
        return ['text', 'points']
    return ['points']


def _split_names(text: str) -> List[str]:
    return [n.strip() for n in (text or '').split(',') if n.strip()]


def run_prediction(model, image: Optional[np.ndarray], mode: str, text: str,
                   points: Sequence[Tuple[float, float, int]]):
    """One click of the page's button: (overlay (H, W', 3) uint8 RGB, score rows, status line).

    ``points``: (x, y, label) of the clicks, label 1 positive, 0 negative.
    Raises :class:`InputError` on what the user gave (the page shows it).
    """
    if image is None:
        raise InputError('upload an image first')
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)  # RGBA -> RGB
    xy = [(float(x), float(y)) for x, y, _ in points] or None
    labels = [int(lab) for _, _, lab in points] or None
    if mode == 'expression':
        if not (text or '').strip():
            raise InputError('type an expression, e.g. "the plate on the left"')
        pred = model.predict(image, expressions=[text.strip()])[0]
    elif mode in ('text', 'text+points'):
        names = _split_names(text)
        if not names:
            raise InputError('type one or more class names, separated by commas')
        if mode == 'text+points' and xy is None:
            raise InputError('click the image to add at least one point (or choose "Class names")')
        pred = model.predict(image, texts=names, points=xy if mode == 'text+points' else None,
                             point_labels=labels if mode == 'text+points' else None)[0]
    elif mode == 'points':
        if xy is None:
            raise InputError('click the image to add at least one point')
        names = _split_names(text)
        pred = model.predict(image, points=xy, point_labels=labels)[0]
        if names:  # a model without text: the names only label the mask
            pred.labels = names[:1] + pred.labels[1:]
    else:
        raise InputError(f'unknown mode {mode!r}; this model offers {", ".join(ui_modes(model))}')
    area = pred.masks.reshape(len(pred.masks), -1).mean(axis=1) if len(pred.masks) else []
    rows = [[label, round(float(s), 3), round(100.0 * float(a), 1)]
            for label, s, a in zip(pred.labels, pred.scores, area)]
    status = f'{len(rows)} mask(s) for {", ".join(pred.labels)}'
    return pred.overlay(), rows, status


def draw_points(image: np.ndarray, points: Sequence[Tuple[float, float, int]]) -> np.ndarray:
    """A copy of ``image`` (H, W, 3) with the clicked points: green positive, red negative."""
    import cv2
    out = np.ascontiguousarray(np.asarray(image)[..., :3]).copy()
    r = max(3, min(out.shape[:2]) // 60)
    for x, y, label in points:
        centre = (int(round(x)), int(round(y)))
        cv2.circle(out, centre, r + 1, (0, 0, 0), -1)
        cv2.circle(out, centre, r, (0, 220, 0) if label else (230, 30, 30), -1)
    return out


def _points_text(points) -> str:
    if not points:
        return 'No points (click the image to add one).'
    return 'Points: ' + ', '.join(f'({x:.0f}, {y:.0f}){"+" if lab else "-"}'
                                  for x, y, lab in points)


def build_demo(model, title: Optional[str] = None):
    """The gradio page (a ``gr.Blocks``) serving ``model`` (a :class:`TextSAM`); ``.launch()`` it."""
    import gradio as gr
    modes = ui_modes(model)
    vocab = model.vocabulary
    hint = (f'e.g. {", ".join(model.class_names[:3])}' if model.class_names else '')
    if vocab is not None:
        hint = f'one or more of: {", ".join(vocab[:20])}' + (' ...' if len(vocab) > 20 else '')

    def predict(image, original, mode_label, text, points):
        mode = next(k for k, v in MODE_LABELS.items() if v == mode_label)
        try:  # the picture as uploaded, without the drawn points
            return run_prediction(model, image if original is None else original, mode, text,
                                  points)
        except InputError as e:
            raise gr.Error(str(e)) from None

    def on_upload(img):
        return img, [], _points_text([])

    def add_point(img, original, points, kind, evt: gr.SelectData):
        original = img if original is None else original
        x, y = evt.index[:2]
        points = list(points) + [(float(x), float(y), 1 if kind == 'positive' else 0)]
        return draw_points(original, points), original, points, _points_text(points)

    def clear_points(original):
        return original, [], _points_text([])

    with gr.Blocks(title=title or f'mmsamptx: {model.name}') as demo:
        gr.Markdown(f'## {title or model.name}\nUpload an image, name what to segment '
                    '(several names: comma-separated), or click the image to add points, '
                    'then press **Segment**.')
        points = gr.State([])
        original = gr.State(None)  # the uploaded picture; the shown one carries the points
        with gr.Row():
            with gr.Column():
                image = gr.Image(type='numpy', format='png', label='Image (click to add points)',
                                 sources=['upload', 'clipboard'], height=320,
                                 elem_id='input-image')
                mode = gr.Radio([MODE_LABELS[m] for m in modes], value=MODE_LABELS[modes[0]],
                                label='Prompt', elem_id='mode')
                text = gr.Textbox(label='Expression' if modes == ['expression']
                                  else 'Class names (comma-separated)', placeholder=hint,
                                  elem_id='texts')
                with gr.Row():
                    kind = gr.Radio(['positive', 'negative'], value='positive',
                                    label='A click adds a', elem_id='point-kind')
                    clear = gr.Button('Clear points', elem_id='clear-points')
                points_md = gr.Markdown(_points_text([]), elem_id='points')
                run = gr.Button('Segment', variant='primary', elem_id='run')
            with gr.Column():
                output = gr.Image(type='numpy', format='png', label='Overlay', interactive=False,
                                  height=320, elem_id='output-image')
                scores = gr.Dataframe(headers=['label', 'score (predicted IoU)', 'area %'],
                                      label='Per-class scores', interactive=False,
                                      elem_id='scores')
                status = gr.Markdown(elem_id='status')
        image.select(add_point, [image, original, points, kind],
                     [image, original, points, points_md])
        image.upload(on_upload, [image], [original, points, points_md])
        image.clear(lambda: (None, [], _points_text([])), None, [original, points, points_md])
        clear.click(clear_points, [original], [image, points, points_md])
        inputs = [image, original, mode, text, points]
        run.click(predict, inputs, [output, scores, status])
        text.submit(predict, inputs, [output, scores, status])
    return demo
