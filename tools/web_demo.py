"""Serve a trained model as a web page (gradio): upload an image, name classes, click points.

    python tools/web_demo.py                          # the model `make demo` trains (trained first if absent)
    python tools/web_demo.py CONFIG CHECKPOINT [--port 7860] [--device cpu]
    python tools/web_demo.py samptx_ade20k_1-64 best.pth   # a model-zoo name works as CONFIG

CHECKPOINT may be a full checkpoint (tools/train.py) or an adapter-only file
(tools/export_adapters.py); without one the config's own initial weights are used
(the official SAM / CLIP files). The page listens on 127.0.0.1 unless --host says otherwise.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

#: what `make demo` trains and where (tools/demo.py): the SAM-PTx run of the demo task
DEMO_CONFIG = 'configs/demo/samptx_demo.py'
DEMO_RUN_DIR = 'work_dirs/demo/samptx'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', nargs='?', default=None,
                        help=f'config file or model-zoo name (default: {DEMO_CONFIG}, trained by '
                             '`make demo`)')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='full or adapter-only checkpoint (default with no CONFIG: the demo\'s)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--allow-partial', action='store_true',
                        help='load a checkpoint whose keys differ from the config\'s model')
    return parser.parse_args(argv)


def demo_checkpoint(root=REPO):
    """The checkpoint `make demo` wrote for its SAM-PTx run, training it first if absent."""
    marker = osp.join(root, DEMO_RUN_DIR, 'last_checkpoint')
    if not osp.isfile(marker):
        print(f'No trained demo model in {DEMO_RUN_DIR}: training it (tools/demo.py --runs samptx, '
              'a few minutes on a CPU) ...', flush=True)
        proc = subprocess.run([sys.executable, osp.join(root, 'tools', 'demo.py'), '--runs', 'samptx'],
                              cwd=root)
        if proc.returncode != 0 or not osp.isfile(marker):
            raise SystemExit(f'error: training the demo model failed (exit {proc.returncode})')
    with open(marker) as f:
        path = f.read().strip()
    return path if osp.isabs(path) else osp.join(root, path)


def main(argv=None, launch=True):
    """Parse, load the model, build the page; ``launch=False`` returns the page unlaunched."""
    args = parse_args(argv)
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    from mmsamptx.apis import InputError, TextSAM
    from mmsamptx.apis.checkpoint import CheckpointError
    from mmsamptx.apis.web_demo import build_demo
    config, checkpoint = args.config, args.checkpoint
    if config is None:
        config, checkpoint = osp.join(REPO, DEMO_CONFIG), demo_checkpoint()
    if checkpoint is not None and not osp.isfile(checkpoint):
        print(f'error: checkpoint not found: {checkpoint}', file=sys.stderr)
        return 2
    try:
        model = TextSAM(config, checkpoint, device=args.device, allow_partial=args.allow_partial)
    except (InputError, CheckpointError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    demo = build_demo(model)
    if not launch:
        return demo
    print(f'Serving {model.name} on http://{args.host}:{args.port} (Ctrl+C stops)', flush=True)
    demo.launch(server_name=args.host, server_port=args.port, share=False, show_error=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
