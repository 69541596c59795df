"""Write dataset samples with their label overlays to a folder, to see what a model trains on.

Usage::

    python tools/browse_dataset.py configs/samptx/samptx_ade20k_1-64.py \
        --out work_dirs/browse --num 20 [--split train|val|test]

Each sample goes through the config's pipeline; the image (``inputs``) gets
its ``gt_sem_seg`` overlaid in the dataset palette (ignore pixels left
untouched), a legend of the classes present, the sample's ``class_name`` /
``expression`` metainfo if any, and ``points`` (N x 2, x/y in the
transformed image) if a prompt transform put them in the metainfo. Files are
written through ``atomic_write``.
"""
import argparse
import os.path as osp
import sys

import cv2
import numpy as np

TEXT_KEYS = ('class_name', 'expression')


def overlay(img: np.ndarray, seg: np.ndarray, palette, alpha: float = 0.5,
            ignore_index: int = 255) -> np.ndarray:
    """Blend the label colours into a BGR image (ignore pixels untouched)."""
    out = img.astype(np.float32).copy()
    pal = np.asarray(palette, np.float32)[:, ::-1]  # RGB -> BGR
    valid = (seg != ignore_index) & (seg < len(pal))
    out[valid] = (1 - alpha) * out[valid] + alpha * pal[seg[valid]]
    return out.clip(0, 255).astype(np.uint8)


def draw_sample(packed: dict, classes, palette, alpha=0.5) -> np.ndarray:
    """Render one packed sample (``inputs`` + ``data_samples``) as BGR."""
    img = packed['inputs'].numpy().transpose(1, 2, 0).copy()
    if img.shape[2] == 1:
        img = np.repeat(img, 3, 2)
    img = np.ascontiguousarray(img.astype(np.uint8))
    sample = packed['data_samples']
    texts = []
    if 'gt_sem_seg' in sample:
        seg = sample.gt_sem_seg.data.numpy()[0].astype(np.int64)
        if seg.shape != img.shape[:2]:
            # test pipelines keep the label at the original size
            seg = cv2.resize(seg.astype(np.uint8), img.shape[1::-1],
                             interpolation=cv2.INTER_NEAREST).astype(np.int64)
        img = overlay(img, seg, palette, alpha)
        for c in np.unique(seg):
            if 0 <= c < len(classes):
                texts.append((f'{c}: {classes[c]}', palette[c][::-1]))
    meta = sample.metainfo
    for key in TEXT_KEYS:
        if key in meta:
            texts.append((f'{key}: {meta[key]}', (255, 255, 255)))
    if 'points' in meta:
        for x, y in np.asarray(meta['points']).reshape(-1, 2)[:, :2]:
            cv2.circle(img, (int(round(x)), int(round(y))), 4, (0, 0, 255), -1)
            cv2.circle(img, (int(round(x)), int(round(y))), 5,
                       (255, 255, 255), 1)
    # legend band under the image
    line_h = 16
    band = np.zeros((line_h * max(len(texts), 1) + 4, max(img.shape[1], 320),
                     3), np.uint8)
    for i, (text, colour) in enumerate(texts):
        cv2.putText(band, text, (4, line_h * (i + 1)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    tuple(int(v) for v in colour), 1, cv2.LINE_AA)
    canvas = np.zeros((img.shape[0] + band.shape[0], band.shape[1], 3),
                      np.uint8)
    canvas[:img.shape[0], :img.shape[1]] = img
    canvas[img.shape[0]:] = band
    return canvas


def browse(config: str, out_dir: str, num: int = 10, split: str = 'train',
           cfg_options=None):
    """Build the ``<split>_dataloader.dataset`` of ``config``; write ``num``
    rendered samples to ``out_dir``; return the written paths."""
    from mmengine import Config
    from mmengine.registry import init_default_scope

    from mmsamptx.utils import atomic_write
    cfg = Config.fromfile(config)  # applies custom_imports
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    from mmseg.registry import DATASETS
    key = f'{split}_dataloader'
    if key not in cfg:
        raise KeyError(f'config {config} has no {key}')
    dataset = DATASETS.build(cfg[key]['dataset'])
    classes = dataset.metainfo['classes']
    palette = dataset.metainfo['palette']
    paths = []
    for i in range(min(num, len(dataset))):
        packed = dataset[i]
        canvas = draw_sample(packed, classes, palette)
        stem = osp.splitext(osp.basename(
            packed['data_samples'].metainfo.get('img_path', f'{i}')))[0]
        path = osp.join(out_dir, f'{i:04d}_{stem}.jpg')
        ok, buf = cv2.imencode('.jpg', canvas)
        if not ok:
            raise RuntimeError(f'could not encode {path}')
        with atomic_write(path, 'wb') as f:
            f.write(buf.tobytes())
        paths.append(path)
    return paths


def main(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--out', default='work_dirs/browse')
    parser.add_argument('--num', type=int, default=10)
    parser.add_argument('--split', default='train',
                        choices=['train', 'val', 'test'])
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    paths = browse(args.config, args.out, args.num, args.split,
                   args.cfg_options)
    print(f'wrote {len(paths)} images to {args.out}')


if __name__ == '__main__':
    sys.exit(main())
