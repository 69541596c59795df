"""Segment images with a trained model: `tools/infer.py IMAGES --config C --checkpoint W --text chair table`.

IMAGES is one or more images, folders (their images, sorted) or glob patterns
(quote them: 'data/*.jpg'). For each image it writes to --out-dir:

* ``<stem>_overlay.png``: the image with each mask tinted in its colour and a legend
  naming the labels and predicted IoUs;
* ``<stem>_<label>_mask.png``: one 0/255 mask per text / expression / prompt;
* ``<stem>_semantic.png``: the assembled label map (0 = none, k = the k-th label),
  a palette PNG in the overlay's colours;
* with ``--rle``, ``<stem>_masks.json``: every mask as COCO RLE (pycocotools) with its
  label and score.

The config is a file or a model-zoo name (a config's stem, e.g. samptx_ade20k_1-64);
the checkpoint is a full or an adapter-only file, loaded strictly unless --allow-partial.
A user error (a missing or undecodable image, a bad checkpoint, an unknown class) is one
line ``error: ...`` and exit status 2.
"""
import argparse
import glob
import io
import json
import os
import os.path as osp
import re
import sys

from mmengine.config import DictAction

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_point(s):
    try:
        x, y = (float(v) for v in s.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a point is x,y in image pixels, got {s!r}')
    return x, y


def parse_box(s):
    try:
        x0, y0, x1, y1 = (float(v) for v in s.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a box is x0,y0,x1,y1 in image pixels, got {s!r}')
    return x0, y0, x1, y1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('images', nargs='+', metavar='IMAGES',
                        help='image files, folders of images, or glob patterns')
    parser.add_argument('--config', required=True,
                        help='config file or model-zoo name (e.g. samptx_ade20k_1-64)')
    parser.add_argument('--checkpoint', help="full or adapter-only checkpoint; default: the "
                        "config's own weights (init_weights: the official SAM / CLIP files)")
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint whose keys differ from the model\'s (the rest '
                        'keeps its initial weights); by default that is an error')
    parser.add_argument('--text', nargs='+', action='extend', metavar='NAME',
                        help='class names to segment, one mask each (repeat or list several)')
    parser.add_argument('--expression', nargs='+', action='extend', metavar='PHRASE',
                        help='referring expressions, one mask each (EVF-SAM models)')
    parser.add_argument('--points', nargs='+', type=parse_point, metavar='X,Y',
                        help='positive point prompts in image pixels (shared by every text)')
    parser.add_argument('--negative-points', nargs='+', type=parse_point, default=[],
                        metavar='X,Y')
    parser.add_argument('--boxes', nargs='+', type=parse_box, metavar='X0,Y0,X1,Y1',
                        help='box prompts in image pixels: one per text, or one for all')
    parser.add_argument('--rle', action='store_true',
                        help='also write the masks as COCO RLE JSON (<stem>_masks.json)')
    parser.add_argument('--out-dir', default='work_dirs/infer')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='config overrides, as in tools/test.py')
    return parser.parse_args(argv)


def find_images(specs):
    """The image files named by ``specs`` (files, folders, globs), in order, each once."""
    from mmsamptx.apis import InputError
    found, seen = [], set()
    for spec in specs:
        if osp.isdir(spec):
            files = sorted(osp.join(spec, f) for f in os.listdir(spec)
                           if f.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(spec, f)))
            if not files:
                raise InputError(f'folder {spec} holds no image ({", ".join(IMAGE_EXTENSIONS)})')
        elif glob.has_magic(spec):
            files = sorted(f for f in glob.glob(spec, recursive=True) if osp.isfile(f))
            if not files:
                raise InputError(f'no file matches {spec}')
        elif osp.isfile(spec):
            files = [spec]
        else:
            raise InputError(f'image file not found: {spec}')
        for f in files:
            if f not in seen:
                seen.add(f)
                found.append(f)
    return found


def slug(text):
    return re.sub(r'[^\w.-]+', '_', text).strip('_') or 'mask'


def encode_png(array, palette=None):
    from PIL import Image
    img = Image.fromarray(array)
    if palette is not None:
        img = img.convert('P') if img.mode != 'P' else img
        img.putpalette(palette)
    buf = io.BytesIO()
    img.save(buf, format='PNG')
    return buf.getvalue()


def write_bytes(path, data):
    from mmsamptx.utils import atomic_write
    with atomic_write(path) as f:
        f.write(data)
    return path


def rle_of(mask):
    from pycocotools import mask as mask_utils
    import numpy as np
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return dict(size=[int(v) for v in rle['size']], counts=rle['counts'].decode('ascii'))


def save_prediction(pred, image_path, stem, out_dir, rle=False):
    """Write a :class:`~mmsamptx.apis.Prediction`'s files; returns their paths."""
    import numpy as np
    from mmsamptx.apis.prediction import colour_of
    written = [write_bytes(osp.join(out_dir, f'{stem}_overlay.png'), encode_png(pred.overlay()))]
    used = set()
    for k, label in enumerate(pred.labels):
        name = slug(label)
        while name in used:
            name += f'_{k + 1}'
        used.add(name)
        written.append(write_bytes(osp.join(out_dir, f'{stem}_{name}_mask.png'),
                                   encode_png(pred.masks[k].astype(np.uint8) * 255)))
    if len(pred.labels) < 256:
        palette = [0, 0, 0] + [v for k in range(len(pred.labels)) for v in colour_of(k)]
        written.append(write_bytes(osp.join(out_dir, f'{stem}_semantic.png'),
                                   encode_png(pred.semantic.astype(np.uint8), palette)))
    if rle:
        records = [dict(image=image_path, label=label, score=float(pred.scores[k]),
                        area=int(pred.masks[k].sum()), segmentation=rle_of(pred.masks[k]))
                   for k, label in enumerate(pred.labels)]
        written.append(write_bytes(osp.join(out_dir, f'{stem}_masks.json'),
                                   json.dumps(records, indent=1).encode()))
    return written


def run(args):
    from tqdm import tqdm
    from mmsamptx.apis import InputError, TextSAM
    from mmsamptx.apis.images import check_image_file
    images = find_images(args.images)
    for path in images:  # before the model is built: a bad file fails fast, named
        check_image_file(path)
    points = (args.points or []) + args.negative_points
    labels = [1] * len(args.points or []) + [0] * len(args.negative_points)
    if (points or args.boxes) and len(images) > 1:
        raise InputError(f'--points and --boxes are pixels of one image, but {len(images)} '
                         'images were given')
    if args.checkpoint is not None and '://' not in args.checkpoint and \
            not osp.isfile(args.checkpoint):
        raise InputError(f'checkpoint file not found: {args.checkpoint}')
    model = TextSAM(args.config, args.checkpoint, device=args.device,
                    allow_partial=args.allow_partial, cfg_options=args.cfg_options)
    os.makedirs(args.out_dir, exist_ok=True)
    stems = set()
    for path in tqdm(images, desc='infer', unit='image', file=sys.stderr,
                     disable=len(images) == 1):
        pred = model.predict(path, texts=args.text, points=points or None,
                             point_labels=labels or None, boxes=args.boxes,
                             expressions=args.expression)[0]
        stem = slug(osp.splitext(osp.basename(path))[0])
        while stem in stems:
            stem += '_'
        stems.add(stem)
        written = save_prediction(pred, path, stem, args.out_dir, args.rle)
        summary = ', '.join(f'{label} {100 * pred.masks[k].mean():.1f}% (IoU {pred.scores[k]:.3f})'
                            for k, label in enumerate(pred.labels))
        tqdm.write(f'{path}: {summary}; overlay: {written[0]}')
    print(f'{len(images)} image(s) segmented; outputs in {args.out_dir}')
    return 0


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    from mmsamptx.apis import InputError
    from mmsamptx.engine import CheckpointSecurityError, UnknownTypeError
    try:
        return run(args)
    except (InputError, UnknownTypeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except CheckpointSecurityError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
