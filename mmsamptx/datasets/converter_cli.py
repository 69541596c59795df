"""Command-line scaffolding shared by the tools in ``tools/dataset_converters/``.

:func:`run_cli` parses the arguments and turns a user error into one
``error:`` line and exit status 2 (tracebacks are left for bugs).
:func:`ptsam_converter_main` is the whole command line of a PTSAM dataset's
converter (``download`` / ``convert`` / ``verify``, docs/ptsam.md): the tool
names only what is its dataset's own (the dataset class, the download and
convert functions, the published split sizes).

``convert`` writes ``<out>/<split>/images/<id>`` (the official file, copied) and
``<out>/<split>/masks/<id>.png`` (0/255) through ``atomic_write``; existing outputs are
kept on a re-run unless ``--overwrite``. ``verify`` checks each split: ids match, masks
are single-channel 0/255 of their image's size, counts equal the source's where it
publishes them. Faults are one ``error:`` line and exit with status 2.
"""
import argparse
from typing import Callable, Dict, Optional, Sequence, Tuple

from .ptsam_binary import verify_split
from .utils import DatasetVerificationError, format_histogram

# The exceptions a converter reports as a user error (one line, status 2).
USER_ERRORS = (FileNotFoundError, ValueError, RuntimeError,
               DatasetVerificationError)


def run_cli(parser: argparse.ArgumentParser, run: Callable,
            argv: Optional[Sequence[str]] = None) -> int:
    """Parse ``argv`` with ``parser`` and return ``run(args)``; a user error
    (:data:`USER_ERRORS`) exits with ``<prog>: error: <message>`` and status 2."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


def verify_ptsam_splits(root: str, dataset_cls: type,
                        expected: Dict[str, int], split: Optional[str] = None,
                        expect: Optional[int] = None, workers: int = 0) -> None:
    """Verify the converted splits of a PTSAM dataset and print each one's
    counts and class histogram.

    Args:
        root: the converted dataset (``<root>/<split>/{images,masks}``).
        dataset_cls: its dataset class (``SPLITS``, ``IMG_SUFFIX``, ``METAINFO``).
        expected: images per split that the source publishes ({} = none).
        split: one split (default: every split of ``dataset_cls.SPLITS``).
        expect: image count expected for ``split`` (needs ``split``).
        workers: processes reading the masks (0 = in this process).
    """
    if expect is not None and split is None:
        raise ValueError('--expect needs --split')
    splits = [split] if split else list(dataset_cls.SPLITS)
    for name in splits:
        count = expect if split else expected.get(name)
        rep = verify_split(root, name, dataset_cls.IMG_SUFFIX, count, workers)
        print(f'{name}: {rep["num_images"]} pairs, '
              f'{len(rep["images_without_labels"])} with an empty mask')
        print(format_histogram(dataset_cls.METAINFO['classes'],
                               rep['image_histogram'], rep['pixel_histogram']))


def ptsam_converter_main(argv: Optional[Sequence[str]], doc: str,
                         dataset_cls: type, expected: Dict[str, int],
                         download: Callable[[str], str],
                         convert: Callable[[argparse.Namespace], int],
                         raw_help: str,
                         convert_options: Sequence[Tuple[tuple, dict]] = ()
                         ) -> int:
    """The command line of a PTSAM dataset converter.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
        doc: the tool's docstring (its first line describes the tool).
        dataset_cls: the dataset class reading the converted layout.
        expected: images per split that the source publishes ({} = none).
        download: ``download(out) -> folder`` fetching the official files.
        convert: ``convert(args) -> number of pairs written``, called with the
            parsed ``convert`` arguments (``raw``, ``out``, ``overwrite`` and
            ``convert_options``).
        raw_help: help text of ``convert``'s ``raw`` argument.
        convert_options: extra ``convert`` options, ``(flags, kwargs)`` each,
            as given to ``add_argument``.

    Returns:
        0; user errors exit with status 2 (:func:`run_cli`).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('download', help='fetch + unpack the official files')
    p.add_argument('--out', required=True)
    p = sub.add_parser('convert', help='official layout -> binary layout')
    p.add_argument('raw', help=raw_help)
    p.add_argument('--out', required=True)
    for flags, kwargs in convert_options:
        p.add_argument(*flags, **kwargs)
    p.add_argument('--overwrite', action='store_true')
    p = sub.add_parser('verify', help='check a converted dataset')
    p.add_argument('root')
    p.add_argument('--split', choices=dataset_cls.SPLITS, default=None,
                   help='one split (default: all)')
    p.add_argument('--expect', type=int, default=None,
                   help='image count expected for --split')
    p.add_argument('--workers', type=int, default=0)

    def run(args):
        if args.cmd == 'download':
            print(f'ready: {download(args.out)}')
        elif args.cmd == 'convert':
            counts = convert(args)
            print(f'wrote {counts} image/mask pairs to {args.out}')
        else:
            verify_ptsam_splits(args.root, dataset_cls, expected, args.split,
                                args.expect, args.workers)
        return 0

    return run_cli(parser, run, argv)
