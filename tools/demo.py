"""`make demo`: SAM-PTx against decoder-only fine-tuning on a generated ambiguous task, on CPU.

Generates a small dataset in ADE20K's layout where one point prompt cannot
tell two touching, identically coloured classes apart (mmsamptx.demo), trains
both models with tools/train.py, tests both with tools/test.py, prints their
mIoUs side by side, and writes loss / mIoU curves and prediction overlays.
"""
import argparse
import os
import os.path as osp
import re
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: The demo configs by name; ``--runs`` picks some (default: the first two).
RUNS = {'decoder-only': ('decoder-only', 'configs/demo/decoder-only_demo.py'),
        'samptx': ('SAM-PTx (Parallel-Text)', 'configs/demo/samptx_demo.py'),
        'parallel-adapter': ('Parallel-Adapter (no text)', 'configs/demo/parallel-adapter_demo.py'),
        'samptx-last2': ('SAM-PTx, text in the last 2 of 4 blocks',
                         'configs/demo/samptx-last2_demo.py'),
        'samptx-zero-init': ('SAM-PTx, zero-init variant (ours)',
                             'configs/demo/samptx-zero-init_demo.py')}
DEFAULT_RUNS = 'decoder-only,samptx'
NO_TEXT_RUNS = ('decoder-only', 'parallel-adapter')


def run(cmd, log_path):
    """Run a tool, teeing its output to a log; returns the output."""
    print('$ ' + ' '.join(cmd), flush=True)
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(log_path, 'w') as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        tail = '\n'.join(proc.stdout.splitlines()[-30:])
        sys.exit(f'{cmd[1]} failed (exit {proc.returncode}); last lines of {log_path}:\n{tail}')
    print(f'  done in {time.time() - start:.0f} s (log: {log_path})', flush=True)
    return proc.stdout


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--iters', type=int, default=None, help='override the configs\' iterations')
    parser.add_argument('--runs', default=DEFAULT_RUNS,
                        help=f'comma-separated runs, of {",".join(RUNS)} (default: {DEFAULT_RUNS})')
    parser.add_argument('--mode', default='prompted', choices=('prompted', 'text'),
                        help="test_cfg.mode of the tests: 'prompted' (class + 1 point, the paper's "
                             "protocol) or 'text' (every class by its name alone; models with text)")
    args = parser.parse_args(argv)
    names = [r.strip() for r in args.runs.split(',') if r.strip()]
    unknown = [r for r in names if r not in RUNS]
    if unknown or not names:
        parser.error(f'--runs: unknown {unknown}; choose from {",".join(RUNS)}')
    no_text = [r for r in names if r in NO_TEXT_RUNS]
    if args.mode == 'text' and no_text:
        parser.error(f'--mode text prompts by class name only, but {",".join(no_text)} read no text; '
                     'choose runs with text, e.g. --runs samptx,samptx-last2')
    sys.path.insert(0, ROOT)
    from mmsamptx.demo import make_ambiguous_shapes
    from mmsamptx.utils.curves import plot_curves

    work_dir = osp.join(ROOT, args.work_dir)
    os.makedirs(work_dir, exist_ok=True)
    data_root = make_ambiguous_shapes(osp.join(work_dir, 'data'))
    print(f'Generated dataset (ADE20K layout): {data_root}')
    results, run_dirs = {}, {}
    for name, config in (RUNS[r] for r in names):
        slug = osp.basename(config)[:-len('_demo.py')]
        run_dir = osp.join(work_dir, slug)
        run_dirs[name] = run_dir
        opts = [f'train_dataloader.dataset.data_root={data_root}',
                f'val_dataloader.dataset.data_root={data_root}',
                f'test_dataloader.dataset.data_root={data_root}']
        test_opts = [f'model.test_cfg.mode={args.mode}', f'val_evaluator.prefix={args.mode}',
                     f'test_evaluator.prefix={args.mode}']
        if args.iters:
            opts += [f'train_cfg.max_iters={args.iters}', f'train_cfg.val_interval={args.iters}']
        print(f'\n== {name}: training ==')
        run([sys.executable, 'tools/train.py', config, '--work-dir', run_dir, '--cfg-options', *opts],
            osp.join(work_dir, f'{slug}_train.log'))
        with open(osp.join(run_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        print(f'== {name}: testing ==')
        out = run([sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
                   osp.join(run_dir, 'test'), '--show-dir', osp.join(run_dir, 'overlays'),
                   '--cfg-options', *opts, *test_opts],
                  osp.join(work_dir, f'{slug}_test.log'))
        found = re.findall(r'mIoU: ([0-9.]+)', out)
        if not found:
            sys.exit(f'no mIoU in the output of tools/test.py for {name}')
        results[name] = float(found[-1])

    curves = plot_curves(run_dirs, osp.join(work_dir, 'curves.png'))
    protocol = 'prompted: class + 1 point' if args.mode == 'prompted' else 'text: class names only'
    print(f'\n== Held-out mIoU on the ambiguous-shapes task ({protocol}) ==')
    for name, miou in results.items():
        print(f'  {name:<40} {miou:6.2f}')
    print(f'\nCurves:   {curves}')
    for name, run_dir in run_dirs.items():
        print(f'Overlays: {osp.join(run_dir, "overlays", "vis_data", "vis_image")}  ({name})')
    print('\nThe real run (GPU; SAM ViT-B and CLIP weights download on first use, data in '
          'docs/datasets.md):\n'
          '  python tools/dataset_converters/ade20k.py verify data/ade/ADEChallengeData2016\n'
          '  bash tools/dist_train.sh configs/samptx_ade20k_1-64.py 2 '
          '--cfg-options train_dataloader.batch_size=1\n'
          '  bash tools/dist_test.sh configs/samptx_ade20k_1-64.py '
          'work_dirs/samptx_ade20k_1-64/best_classwise_mIoU_epoch_N.pth 2')


if __name__ == '__main__':
    main()
