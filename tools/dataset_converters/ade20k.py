"""Prepare ADE20K (ADEChallengeData2016): download, verify, published or seeded low-data splits.

Usage::

    # on a machine with internet (else: place the zip by hand, see message)
    python tools/dataset_converters/ade20k.py download --out data/
    python tools/dataset_converters/ade20k.py verify data/ADEChallengeData2016
    python tools/dataset_converters/ade20k.py split data/ADEChallengeData2016 \
        --denom 64 --seed 0 --out splits/ade20k/1_64/seed0

    # UniMatch V2's published 1/64 list: download once, check its sha256,
    # check that every image/label it names is in the dataset root
    python tools/dataset_converters/ade20k.py published 1_64 \
        --root data/ADEChallengeData2016

``published`` takes ``1_64``, ``1_32``, ``1_16``, ``1_8``, ``1_4`` or ``val``
and keeps the list in the split cache (``~/.cache/mmsamptx/splits`` or
``$MMSAMPTX_SPLITS_DIR``, ``--splits-dir``); ``--out FILE`` copies it too.
Configs name it as ``published_split='ade20k/1_64'``. Offline, the message
names the URL and where to put the file.

``split`` writes ``labeled.txt`` (``ceil(20210 / 64) = 316`` training ids,
one per line, sorted) and ``unlabeled.txt`` (the other 19,894) atomically.
"""
import argparse
import os
import os.path as osp
import sys
import zipfile

from mmsamptx.utils import atomic_write
from mmsamptx.datasets.published_splits import fetch_published_split
from mmsamptx.datasets.utils import (DatasetVerificationError,
                                     format_histogram, list_files,
                                     seeded_subset, split_size, verify_pairs,
                                     write_split_file)

URL = 'http://data.csail.mit.edu/places/ADEchallenge/ADEChallengeData2016.zip'
ARCHIVE = 'ADEChallengeData2016.zip'
ROOT_NAME = 'ADEChallengeData2016'
EXPECTED_COUNTS = dict(training=20210, validation=2000)
NUM_CLASSES = 150


def download(out_dir: str, url: str = URL) -> str:
    """Download and extract the official archive into ``out_dir``.

    Returns the dataset root. Without network access it raises
    ``RuntimeError`` saying which file to place where; an archive already in
    ``out_dir`` is extracted without downloading.
    """
    archive = osp.join(out_dir, ARCHIVE)
    root = osp.join(out_dir, ROOT_NAME)
    marker = osp.join(root, '.extracted')
    if osp.isfile(marker):
        return root
    if not osp.isfile(archive):
        import urllib.request

        from tqdm import tqdm
        try:
            # atomic_write: an interrupted download leaves no partial zip.
            with urllib.request.urlopen(url, timeout=30) as r, \
                    atomic_write(archive, 'wb') as f:
                total = int(r.headers.get('Content-Length') or 0)
                with tqdm(total=total, unit='B', unit_scale=True,
                          desc=ARCHIVE) as bar:
                    for chunk in iter(lambda: r.read(1 << 20), b''):
                        f.write(chunk)
                        bar.update(len(chunk))
        except OSError as e:
            raise RuntimeError(
                f'could not download {url} ({e}). On a machine with internet '
                f'download {ARCHIVE} (about 923 MB) from {url}, place it at '
                f'{archive} and run this command again.') from e
    extract(archive, out_dir)
    with atomic_write(marker, 'wb') as f:
        f.write(b'ok\n')
    return root


def extract(archive: str, out_dir: str) -> None:
    """Extract ``archive`` member by member through ``atomic_write``.

    A run interrupted half-way leaves only complete files; the caller writes
    a ``.extracted`` marker once every member is out.
    """
    import shutil

    from tqdm import tqdm
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.infolist() if not m.is_dir()]
            for m in tqdm(members, desc=f'extract {osp.basename(archive)}'):
                dest = osp.realpath(osp.join(out_dir, m.filename))
                if not dest.startswith(osp.realpath(out_dir) + os.sep):
                    raise RuntimeError(f'{archive}: member {m.filename} '
                                       'would be written outside ' + out_dir)
                with z.open(m) as src, atomic_write(dest, 'wb') as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile as e:
        raise RuntimeError(f'{archive} is not a valid zip archive ({e}); '
                           'delete it and download it again') from e


def pairs(root: str, subset: str):
    """Return the (image, label) path pairs of ``training``/``validation``."""
    img_dir = osp.join(root, 'images', subset)
    ann_dir = osp.join(root, 'annotations', subset)
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'ADE20K image folder {img_dir} does not '
                                f'exist; expected {ROOT_NAME}/images/{subset}')
    if not osp.isdir(ann_dir):
        raise FileNotFoundError(f'ADE20K annotation folder {ann_dir} does not '
                                'exist')
    return [(osp.join(img_dir, n), osp.join(ann_dir, n[:-4] + '.png'))
            for n in list_files(img_dir, '.jpg')]


def verify(root: str, expected_counts=EXPECTED_COUNTS, workers: int = 0):
    """Check every image/label pair of both subsets; return a report per subset.

    Labels must hold 0 (other, ignored) .. 150. ``expected_counts`` (None to
    skip) makes a count mismatch an error. Raises ``DatasetVerificationError``
    listing each bad file.
    """
    from mmseg.datasets import ADE20KDataset
    reports = {}
    for subset in ('training', 'validation'):
        rep = verify_pairs(
            pairs(root, subset), NUM_CLASSES, reduce_zero_label=True,
            workers=workers, desc=f'ADE20K {subset}')
        if expected_counts and rep['num_images'] != expected_counts[subset]:
            raise ValueError(
                f'ADE20K {subset}: found {rep["num_images"]} images in '
                f'{osp.join(root, "images", subset)}, expected '
                f'{expected_counts[subset]}')
        rep['classes'] = ADE20KDataset.METAINFO['classes']
        reports[subset] = rep
    return reports


def make_split(root: str, denom: int, seed: int, out_dir: str):
    """Write ``labeled.txt``/``unlabeled.txt`` for a seeded 1/denom split.

    The labelled part holds ``ceil(n / denom)`` training ids. Returns the
    labelled ids (sorted).
    """
    ids = [osp.basename(p)[:-4] for p, _ in pairs(root, 'training')]
    if not ids:
        raise ValueError(f'no training image in {root}/images/training')
    labeled = seeded_subset(ids, split_size(len(ids), denom), seed)
    chosen = set(labeled)
    write_split_file(osp.join(out_dir, 'labeled.txt'), labeled)
    write_split_file(osp.join(out_dir, 'unlabeled.txt'),
                     [i for i in ids if i not in chosen])
    return labeled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='cmd', required=True)
    p = sub.add_parser('download', help='download + extract the archive')
    p.add_argument('--out', default='data')
    p = sub.add_parser('verify', help='check counts, labels, histogram')
    p.add_argument('root')
    p.add_argument('--workers', type=int, default=4)
    p.add_argument('--no-count-check', action='store_true')
    p = sub.add_parser('split', help='seeded 1/denom labelled split')
    p.add_argument('root')
    p.add_argument('--denom', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', required=True,
                   help='folder, e.g. splits/ade20k/1_64/seed0')
    p = sub.add_parser('published',
                       help="UniMatch V2's published list: fetch + verify")
    p.add_argument('name', help='1_64, 1_32, 1_16, 1_8, 1_4 or val')
    p.add_argument('--root', default=None,
                   help='dataset root whose files the list must name')
    p.add_argument('--out', default=None, help='also copy the list here')
    p.add_argument('--splits-dir', default=None, help='split cache folder')
    p.add_argument('--base-url', default=None, help='download mirror')
    args = parser.parse_args(argv)
    try:
        run(args)
    except DatasetVerificationError:
        raise  # its report lists each bad file, one per line
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


def run(args):
    """Run the parsed sub-command."""
    if args.cmd == 'published':
        info = fetch_published_split(args.name, 'ade20k', args.root, args.out,
                                     args.splits_dir, args.base_url)
        checked = f', every file present under {args.root}' if args.root \
            else ''
        print(f'{info["name"]}: {info["lines"]} lines, sha256 ok{checked}: '
              f'{info["copy"] or info["path"]}')
    elif args.cmd == 'download':
        print(download(args.out))
    elif args.cmd == 'verify':
        reports = verify(args.root, None if args.no_count_check else
                         EXPECTED_COUNTS, args.workers)
        for subset, rep in reports.items():
            print(f'== {subset}: {rep["num_images"]} images, '
                  f'{len(rep["images_without_labels"])} without any labelled '
                  'pixel')
            print(format_histogram(rep['classes'], rep['image_histogram'],
                                   rep['pixel_histogram']))
    else:
        ids = make_split(args.root, args.denom, args.seed, args.out)
        print(f'wrote {len(ids)} labelled ids to '
              f'{osp.join(args.out, "labeled.txt")}')


if __name__ == '__main__':
    sys.exit(main())
