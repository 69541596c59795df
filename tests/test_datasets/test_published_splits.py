"""Published split lists: download from a local server, sha256 checks, the
real UniMatch files, and the datasets reading UniMatch's line format."""
import hashlib
import importlib.util
import os
import os.path as osp

import numpy as np
import pytest
from mmseg.registry import DATASETS
from test_datasets.miniature import (ade_label, ade_unimatch_lines,
                                     closed_port_url, coco_unimatch_lines,
                                     expected_coco_train_labels, make_ade,
                                     make_coco, serve_folder, write_img,
                                     write_label, write_split_lines)

from mmsamptx.datasets import published_splits as ps
from mmsamptx.datasets.utils import read_split_file

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SHARED = '/work/shared/data/splits'
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
FAKE = (b'images/training/ADE_train_00000002.jpg '
        b'annotations/training/ADE_train_00000002.png\n'
        b'images/training/ADE_train_00000005.jpg '
        b'annotations/training/ADE_train_00000005.png')  # no final newline


def no_temp_files(folder):
    return not any(f.endswith('.tmp') for _, _, fs in os.walk(folder)
                   for f in fs)


@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    """Serve a 2-line 'ade20k/1_64' list; the table holds its sha256."""
    served = tmp_path / 'served'
    (served / 'ade20k' / '1_64').mkdir(parents=True)
    (served / 'ade20k' / '1_64' / 'labeled.txt').write_bytes(FAKE)
    entry = ps.PUBLISHED_SPLITS['ade20k/1_64']
    monkeypatch.setitem(
        ps.PUBLISHED_SPLITS, 'ade20k/1_64',
        entry._replace(sha256=hashlib.sha256(FAKE).hexdigest(), lines=2))
    monkeypatch.delenv(ps.ENV_DIR, raising=False)
    monkeypatch.delenv(ps.ENV_URL, raising=False)
    with serve_folder(served) as (url, requests):
        yield served, url, requests


# ------------------------------------------------------------ download/cache
def test_download_is_verified_and_cached(fake_server, tmp_path):
    served, url, requests = fake_server
    cache = tmp_path / 'cache'
    path = ps.published_split('ade20k/1_64', root=str(cache), base_url=url)
    assert path == str(cache / 'ade20k' / '1_64' / 'labeled.txt')
    assert open(path, 'rb').read() == FAKE
    assert requests == ['/ade20k/1_64/labeled.txt']
    # second use: read from the cache, checked, not downloaded again
    assert ps.published_split('ade20k/1_64', root=str(cache),
                              base_url=url) == path
    assert len(requests) == 1
    assert no_temp_files(str(cache))


def test_cache_folder_and_url_from_environment(fake_server, tmp_path,
                                               monkeypatch):
    _, url, requests = fake_server
    monkeypatch.setenv(ps.ENV_DIR, str(tmp_path / 'env_cache'))
    monkeypatch.setenv(ps.ENV_URL, url + '/')
    assert ps.published_split_url('ade20k/1_64') == \
        url + '/ade20k/1_64/labeled.txt'
    path = ps.published_split('ade20k/1_64')
    assert path == str(tmp_path / 'env_cache' / 'ade20k' / '1_64' /
                       'labeled.txt')
    # an argument wins over the environment
    other = ps.published_split('ade20k/1_64', root=str(tmp_path / 'arg'))
    assert other.startswith(str(tmp_path / 'arg'))
    assert len(requests) == 2


def test_default_urls_and_cache_folder(monkeypatch):
    monkeypatch.delenv(ps.ENV_URL, raising=False)
    monkeypatch.delenv(ps.ENV_DIR, raising=False)
    assert ps.published_split_url('ade20k/1_64') == (
        'https://raw.githubusercontent.com/LiheYoung/UniMatch-V2/main/'
        'splits/ade20k/1_64/labeled.txt')
    assert ps.published_split_url('coco/val') == (
        'https://raw.githubusercontent.com/LiheYoung/UniMatch/main/'
        'splits/coco/val.txt')
    assert ps.published_split_url('pascal/92') == (
        'https://raw.githubusercontent.com/LiheYoung/UniMatch/main/'
        'splits/pascal/92/labeled.txt')
    assert ps.splits_dir() == osp.expanduser('~/.cache/mmsamptx/splits')


def test_changed_byte_in_download_is_refused(fake_server, tmp_path):
    served, url, _ = fake_server
    target = served / 'ade20k' / '1_64' / 'labeled.txt'
    target.write_bytes(FAKE.replace(b'00000005', b'00000006'))
    cache = tmp_path / 'cache'
    with pytest.raises(ValueError) as e:
        ps.published_split('ade20k/1_64', root=str(cache), base_url=url)
    msg = str(e.value)
    expected = hashlib.sha256(FAKE).hexdigest()
    actual = hashlib.sha256(target.read_bytes()).hexdigest()
    assert expected in msg and actual in msg
    assert url + '/ade20k/1_64/labeled.txt' in msg
    assert not (cache / 'ade20k' / '1_64' / 'labeled.txt').exists()
    assert no_temp_files(str(tmp_path))


@pytest.mark.parametrize('edit', ['byte', 'truncate'])
def test_changed_file_on_disk_is_refused(fake_server, tmp_path, edit):
    _, url, requests = fake_server
    cache = tmp_path / 'cache'
    path = ps.published_split('ade20k/1_64', root=str(cache), base_url=url)
    bad = FAKE[:-5] if edit == 'truncate' else FAKE.replace(b'ADE', b'ADF', 1)
    with open(path, 'wb') as f:
        f.write(bad)
    with pytest.raises(ValueError) as e:
        ps.published_split('ade20k/1_64', root=str(cache), base_url=url)
    msg = str(e.value)
    assert path in msg
    assert hashlib.sha256(FAKE).hexdigest() in msg
    assert hashlib.sha256(bad).hexdigest() in msg
    assert len(requests) == 1  # refused, not silently replaced


def test_offline_names_url_and_destination(tmp_path, monkeypatch):
    monkeypatch.delenv(ps.ENV_URL, raising=False)
    base = closed_port_url()
    cache = tmp_path / 'cache'
    with pytest.raises(RuntimeError) as e:
        ps.published_split('coco/1_512', root=str(cache), base_url=base)
    msg = str(e.value)
    assert base + '/coco/1_512/labeled.txt' in msg
    assert str(cache / 'coco' / '1_512' / 'labeled.txt') in msg
    assert '\n' not in msg
    assert not (cache / 'coco' / '1_512' / 'labeled.txt').exists()
    assert no_temp_files(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='labeled.txt'):
        ps.published_split('coco/1_512', root=str(cache), download=False)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as e:
        ps.published_split('ade20k/1_65')
    msg = str(e.value)
    assert "'ade20k/1_65'" in msg
    for name in ('ade20k/1_64', 'ade20k/val', 'coco/1_512', 'coco/val',
                 'pascal/92', 'pascal/val'):
        assert name in msg
    with pytest.raises(ValueError) as e:
        ps.resolve_published_name('1_512', 'ade20k')
    assert 'ade20k/1_64' in str(e.value) and 'coco/' not in str(e.value)
    assert ps.resolve_published_name('1_512', 'coco') == 'coco/1_512'
    assert len(ps.list_published_splits()) == 18
    assert ps.list_published_splits('pascal') == [
        'pascal/92', 'pascal/183', 'pascal/366', 'pascal/732', 'pascal/1464',
        'pascal/val']


# ------------------------------------------------------- the real UniMatch files
needs_shared = pytest.mark.skipif(not osp.isdir(SHARED),
                                  reason=f'{SHARED} is absent')


@needs_shared
@pytest.mark.parametrize('name', sorted(ps.PUBLISHED_SPLITS))
def test_real_files_match_table(name):
    entry = ps.PUBLISHED_SPLITS[name]
    path = osp.join(SHARED, *entry.path.split('/'))
    data = open(path, 'rb').read()
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert ps.count_lines(data) == entry.lines
    # the shared folder has the cache layout: usable as root, offline
    assert ps.published_split(name, root=SHARED, download=False) == path


@needs_shared
@pytest.mark.parametrize('name,n', [('ade20k/1_64', 316), ('coco/1_512', 232),
                                    ('pascal/92', 92)])
def test_real_files_read_with_expected_ids(name, n):
    path = ps.published_split(name, root=SHARED, download=False)
    ids = read_split_file(path)
    assert len(ids) == n == len(set(ids))
    if name == 'ade20k/1_64':
        assert not open(path, 'rb').read().endswith(b'\n')  # still 316


@needs_shared
def test_ade20k_1_64_dataset_on_a_miniature_holding_its_images(tmp_path):
    """The published 1/64 list drives the dataset on a tiny ADE root."""
    path = osp.join(SHARED, 'ade20k', '1_64', 'labeled.txt')
    root = tmp_path / 'ADEChallengeData2016'
    for line in open(path).read().split('\n'):
        img, seg = line.split()
        write_img(str(root / img), 2, 3, 0)
        write_label(str(root / seg), np.ones((2, 3), np.uint8))
    ds = DATASETS.build(dict(
        type='ADE20KSplitDataset', data_root=str(root),
        published_split='ade20k/1_64', splits_dir=SHARED, pipeline=PIPELINE))
    assert len(ds) == 316
    first = open(path).readline().split()
    assert ds.get_data_info(0)['img_path'] == osp.join(str(root), first[0])
    assert ds.get_data_info(0)['seg_map_path'] == osp.join(str(root), first[1])


# ------------------------------------------- datasets on UniMatch-format lines
def build(cfg_type, root, **kw):
    cfg = dict(type=cfg_type, data_root=root, pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def ade_prefix(subset='training'):
    return dict(img_path=f'images/{subset}', seg_map_path=f'annotations/{subset}')


def test_ade_reads_unimatch_lines(tmp_path):
    root = make_ade(str(tmp_path), n_train=6, n_val=2)
    split = write_split_lines(osp.join(root, 'um.txt'),
                              ade_unimatch_lines([4, 2]))
    ds = build('ADE20KSplitDataset', root, ann_file='um.txt',
               data_prefix=ade_prefix())
    assert len(ds) == 2
    for k, i in enumerate((4, 2)):
        s = ds[k]['data_samples']
        assert s.img_path == osp.join(root, 'images', 'training',
                                      f'ADE_train_{i:08d}.jpg')
        raw = ade_label(i).astype(np.int64)
        np.testing.assert_array_equal(s.gt_sem_seg.data.numpy()[0],
                                      np.where(raw == 0, 255, raw - 1))
    # validation lines: the line says where the files are, whatever the prefix
    write_split_lines(split, ade_unimatch_lines([1, 2], 'validation'), True)
    ds = build('ADE20KSplitDataset', root, ann_file='um.txt',
               data_prefix=ade_prefix())
    assert [osp.basename(d['img_path']) for d in ds.load_data_list()] == [
        'ADE_val_00000001.jpg', 'ADE_val_00000002.jpg']


def test_ade_published_split_through_local_server(fake_server, tmp_path,
                                                  monkeypatch):
    _, url, _ = fake_server
    monkeypatch.setenv(ps.ENV_URL, url)
    root = make_ade(str(tmp_path / 'data'), n_train=6, n_val=1)
    ds = build('ADE20KSplitDataset', root, published_split='1_64',
               splits_dir=str(tmp_path / 'cache'), data_prefix=ade_prefix())
    assert [osp.basename(ds.get_data_info(i)['img_path'])
            for i in range(len(ds))] == ['ADE_train_00000002.jpg',
                                         'ADE_train_00000005.jpg']
    with pytest.raises(ValueError, match='not both'):
        build('ADE20KSplitDataset', root, published_split='1_64',
              ann_file='x.txt', splits_dir=str(tmp_path / 'cache'))
    with pytest.raises(ValueError) as e:
        build('ADE20KSplitDataset', root, published_split='coco/1_512',
              splits_dir=str(tmp_path / 'cache'))
    assert 'ade20k/1_64' in str(e.value) and 'coco/1_512' in str(e.value)


def test_ade_split_naming_missing_file(tmp_path):
    root = make_ade(str(tmp_path), n_train=4, n_val=1)
    os.remove(osp.join(root, 'annotations', 'training',
                       'ADE_train_00000003.png'))
    split = write_split_lines(osp.join(root, 'um.txt'),
                              ade_unimatch_lines([1, 3]))
    with pytest.raises(FileNotFoundError) as e:
        build('ADE20KSplitDataset', root, ann_file=split)
    msg = str(e.value)
    assert split in msg and 'line 2' in msg
    assert osp.join(root, 'annotations', 'training',
                    'ADE_train_00000003.png') in msg


def load_coco_converter():
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'coco_object.py')
    spec = importlib.util.spec_from_file_location('coco_conv_published', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_coco_reads_unimatch_lines_and_flat_masks(tmp_path):
    root = make_coco(str(tmp_path / 'coco'))
    load_coco_converter().convert(root, workers=0, layout='unimatch')
    assert osp.isfile(osp.join(root, 'masks', '000000000001.png'))
    assert osp.isfile(osp.join(root, 'masks', '000000000007.png'))
    assert not osp.isdir(osp.join(root, 'masks', 'train2017'))
    write_split_lines(osp.join(root, 'labeled.txt'),
                      coco_unimatch_lines([2, 1]))
    ds = build('COCOObjectDataset', root, ann_file='labeled.txt',
               data_prefix=dict(img_path='train2017',
                                seg_map_path='masks/train2017'))
    expected = expected_coco_train_labels()
    assert len(ds) == 2
    for k, stem in enumerate(('000000000002', '000000000001')):
        s = ds[k]['data_samples']
        assert s.img_path == osp.join(root, 'train2017', stem + '.jpg')
        np.testing.assert_array_equal(s.gt_sem_seg.data.numpy()[0],
                                      expected[stem])
    write_split_lines(osp.join(root, 'val.txt'),
                      coco_unimatch_lines([7], 'val2017'))
    ds = build('COCOObjectDataset', root, ann_file='val.txt')
    assert ds[0]['data_samples'].gt_sem_seg.data.numpy().max() == 80


def test_coco_split_naming_missing_mask_hints_layout(tmp_path):
    root = make_coco(str(tmp_path / 'coco'))
    load_coco_converter().convert(root, workers=0)  # nested masks/train2017
    split = write_split_lines(osp.join(root, 'labeled.txt'),
                              coco_unimatch_lines([1]))
    with pytest.raises(FileNotFoundError) as e:
        build('COCOObjectDataset', root, ann_file=split)
    msg = str(e.value)
    assert split in msg and 'line 1' in msg
    assert osp.join(root, 'masks', '000000000001.png') in msg
    assert '--layout unimatch' in msg


def test_split_line_with_three_fields_is_refused(tmp_path):
    root = make_ade(str(tmp_path), n_train=2, n_val=1)
    split = write_split_lines(osp.join(root, 'bad.txt'),
                              ['ADE_train_00000001', 'a b c'])
    with pytest.raises(ValueError, match=r'line 2 .*3 fields'):
        build('ADE20KSplitDataset', root, ann_file=split,
              data_prefix=ade_prefix())
