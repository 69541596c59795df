"""Write the adapter-only checkpoint of a trained model: `tools/export_adapters.py CKPT --out FILE`.

Keeps the tensors that train in the config's model (adapters, prompt tokens, the
decoder where it is fine-tuned), the config text and the sha256 of the base
weights they were trained on (mmsamptx.apis.adapter_checkpoint). Load the file
wherever a checkpoint is accepted, on a model whose base weights are the
official files.
"""
import argparse
import sys


def _mb(n: int) -> str:
    return f'{n / 2**20:,.1f} MiB'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('checkpoint', help="a full checkpoint written by tools/train.py")
    parser.add_argument('--out', required=True, help='the adapter-only file to write (.safetensors)')
    parser.add_argument('--config', help="the config it was trained with (default: the one stored "
                        "in the checkpoint's meta)")
    args = parser.parse_args(argv)
    from mmsamptx.apis.adapter_checkpoint import export_adapters
    try:
        info = export_adapters(args.checkpoint, args.out, args.config)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    ratio = info['full_bytes'] / max(info['adapter_bytes'], 1)
    print(f"{info['trained_tensors']} trained tensors ({info['trained_params']:,} parameters) "
          f"written to {info['out']}")
    print(f"size: {_mb(info['adapter_bytes'])} (full checkpoint {_mb(info['full_bytes'])}, "
          f"{ratio:.1f}x smaller)")
    print(f"base weights: {info['base_tensors']} tensors, sha256 {info['base_digest']}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
