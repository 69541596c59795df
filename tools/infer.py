"""Segment one image with a trained model: `tools/infer.py IMAGE --config C --checkpoint W --text chair`."""
import argparse
import os.path as osp
import sys


def parse_point(s):
    try:
        x, y = (float(v) for v in s.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a point is x,y in image pixels, got {s!r}')
    return x, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('image')
    parser.add_argument('--config', required=True)
    parser.add_argument('--checkpoint', help='a trained checkpoint; default: the config\'s weights')
    parser.add_argument('--text', help='class name to segment')
    parser.add_argument('--points', nargs='+', type=parse_point, metavar='X,Y',
                        help='positive point prompts in image pixels')
    parser.add_argument('--negative-points', nargs='+', type=parse_point, default=[], metavar='X,Y')
    parser.add_argument('--out-dir', default='work_dirs/infer')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    for path, what in ((args.image, 'image'), (args.config, 'config'), (args.checkpoint, 'checkpoint')):
        if path is not None and not osp.isfile(path):
            print(f'error: {what} file not found: {path}', file=sys.stderr)
            return 2
    from mmsamptx.apis import init_segmentor, save_mask, save_overlay, segment
    model = init_segmentor(args.config, args.checkpoint, args.device)
    points = (args.points or []) + args.negative_points
    labels = [1] * len(args.points or []) + [0] * len(args.negative_points)
    try:
        result = segment(model, args.image, args.text, points or None, labels or None)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    stem = osp.splitext(osp.basename(args.image))[0] + (f'_{args.text}' if args.text else '')
    stem = stem.replace(' ', '_')
    mask_path = save_mask(result['mask'], osp.join(args.out_dir, stem + '_mask.png'))
    overlay_path = save_overlay(args.image, result['mask'], osp.join(args.out_dir, stem + '_overlay.png'),
                                points)
    print(f'predicted IoU {result["score"]:.3f}; mask covers {100 * result["mask"].mean():.1f}% of the image')
    print(f'mask:    {mask_path}\noverlay: {overlay_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
