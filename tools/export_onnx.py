"""Export a trained model to ONNX: `tools/export_onnx.py CONFIG CHECKPOINT --out-dir D`.

Writes encoder.onnx (the image encoder with its adapters; the class's text
embedding as an input), decoder.onnx (SAM's ONNX decoder convention), model.json
and class_embeddings.npy, then runs both with onnxruntime and prints their largest
difference from torch (mmsamptx.apis.onnx_export).
"""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help="the model's config file or model-zoo name")
    parser.add_argument('checkpoint', help="full or adapter-only checkpoint, or 'none' for the "
                        "config's own initial weights")
    parser.add_argument('--out-dir', required=True, help='folder for the .onnx files')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the onnxruntime run against torch')
    args = parser.parse_args(argv)
    from mmsamptx.apis.onnx_export import export_onnx
    try:
        info = export_onnx(args.config, args.checkpoint,
                           args.out_dir, verify=not args.no_verify)
    except ValueError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    for key in ('encoder', 'decoder', 'meta', 'class_embeddings'):
        if key in info:
            print(f'{key + ":":18}{info[key]}')
    if not args.no_verify:
        print(f"onnxruntime vs torch, max abs error: encoder {info['encoder_max_abs_error']:.2e}, "
              f"decoder {info['decoder_max_abs_error']:.2e}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
