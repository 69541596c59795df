"""How much memory will training need? The predicted peak of one training step, and whether it fits.

Builds the config's model and optimiser (random weights: no download) and runs
training steps on generated batches of the config's input size and per-image
composition, measuring each (CUDA allocator peak, or CPU peak RSS growth): the
full step when the batch has at most 2 images, otherwise steps of 1 and 2
images scaled linearly to the batch (mmsamptx/apis/memory.py says how). The
output says which was done. tools/train.py prints the same line at its start.

    python tools/estimate_memory.py configs/samptx_ade20k_1-64.py
    python tools/estimate_memory.py CONFIG --compare   # also measure the full step, each fresh
"""
import argparse
import json
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='training config file')
    parser.add_argument('--device', default=None,
                        help="'cpu', 'cuda' or 'cuda:N' (default: CUDA if available)")
    parser.add_argument('--measure', action='store_true',
                        help='measure the full-size training step instead of probing (as large '
                             'and as slow as the step itself)')
    parser.add_argument('--compare', action='store_true',
                        help='estimate, then measure the full-size step, each in a fresh process, '
                             'and print both and the error of the estimate')
    parser.add_argument('--json', default=None, help='also write the result(s) to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value (as tools/train.py)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'error: config file not found: {args.config}', file=sys.stderr)
        return 2
    if args.measure and args.compare:
        print('error: --measure and --compare exclude each other (--compare measures too)',
              file=sys.stderr)
        return 2
    import mmsamptx  # noqa: F401
    from mmsamptx.apis.memory import estimate_and_measure, estimate_training_memory
    from mmsamptx.engine import load_config, unknown_type_hint
    from mmsamptx.utils import atomic_write
    cfg = load_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.device is not None and args.device.split(':')[0] not in ('cpu', 'cuda'):
        print(f"error: --device {args.device}: expected 'cpu', 'cuda' or 'cuda:N'", file=sys.stderr)
        return 2
    try:
        with unknown_type_hint(args.config):
            if args.compare:
                est, measured = estimate_and_measure(cfg, args.device, args.config)
                error = est['step_mib'] / measured['step_mib'] - 1
                result = dict(estimate=est, measured=measured, step_error=error)
                print(est['line'])
                print(measured['line'])
                print(f'Estimate against the measured step: {est["step_mib"]:,.0f} vs '
                      f'{measured["step_mib"]:,.0f} MiB ({error:+.1%})')
            else:
                est = estimate_training_memory(cfg, args.device, args.measure, args.config)
                result = est.to_dict()
                print(est.line())
    except ValueError as e:  # the config's values (an unsupported model, a missing size)
        print(f'error: {args.config}: {e}', file=sys.stderr)
        return 2
    if args.json:
        with atomic_write(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
