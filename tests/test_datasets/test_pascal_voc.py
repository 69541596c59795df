"""PascalVOCSplitDataset and tools/dataset_converters/pascal_voc.py on a miniature VOC 2012."""
import importlib.util
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
from mmseg.registry import DATASETS
from PIL import Image

import mmsamptx  # noqa: F401
from mmsamptx.datasets import ClassPairDataset
from mmsamptx.datasets.pascal_voc import (VOC_CLASSES, VOC_SYNONYMS,
                                          VOC_TEXT_NAME_OF_CLASS,
                                          VOC_TEXT_NAMES, download_voc)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SPLITS = '/work/shared/data/splits/pascal'
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
TRAIN_IDS = ['2007_000032', '2007_000039', '2008_000008', '2009_000012']
VAL_IDS = ['2007_000033', '2010_004493']


# ------------------------------------------------------------- miniature
def voc_palette():
    """The VOC colour map (bit-interleaved), 256 entries, as a flat list."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def voc_label(i, h=10, w=14):
    """Label of image ``i``: background, two objects (1..20) and a 255 border."""
    lab = np.zeros((h, w), np.uint8)
    lab[2:8, 1:6] = (i % 20) + 1
    lab[2:8, 8:13] = ((i * 7 + 3) % 20) + 1
    lab[1, 1:6] = 255
    return lab


def write_palette_png(path, arr):
    os.makedirs(osp.dirname(path), exist_ok=True)
    im = Image.fromarray(np.asarray(arr, np.uint8), mode='P')
    im.putpalette(voc_palette())
    im.save(path)


def make_voc(root, train=TRAIN_IDS, val=VAL_IDS, h=10, w=14):
    """VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}."""
    base = osp.join(root, 'VOCdevkit', 'VOC2012')
    rng = np.random.RandomState(0)
    for i, stem in enumerate(list(train) + list(val)):
        os.makedirs(osp.join(base, 'JPEGImages'), exist_ok=True)
        img = rng.randint(0, 255, (h, w, 3), np.uint8)
        Image.fromarray(img).save(osp.join(base, 'JPEGImages', stem + '.jpg'))
        write_palette_png(osp.join(base, 'SegmentationClass', stem + '.png'),
                          voc_label(i, h, w))
    sets = osp.join(base, 'ImageSets', 'Segmentation')
    os.makedirs(sets)
    for name, ids in (('train', train), ('val', val),
                      ('trainval', sorted(list(train) + list(val)))):
        with open(osp.join(sets, name + '.txt'), 'w') as f:
            f.write(''.join(i + '\n' for i in ids))
    return base


def unimatch_lines(ids):
    return [f'JPEGImages/{i}.jpg SegmentationClass/{i}.png' for i in ids]


def build(root, **kw):
    cfg = dict(type='PascalVOCSplitDataset', data_root=root, pipeline=PIPELINE)
    cfg.update(kw)
    return DATASETS.build(cfg)


def load_tool():
    path = osp.join(ROOT, 'tools', 'dataset_converters', 'pascal_voc.py')
    spec = importlib.util.spec_from_file_location('converter_pascal_voc', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------- dataset
def test_labels_are_palette_indices(tmp_path):
    root = make_voc(str(tmp_path))
    png = osp.join(root, 'SegmentationClass', VAL_IDS[0] + '.png')
    with Image.open(png) as im:
        assert im.mode == 'P'  # as the official labels
    ds = build(root, ann_file='ImageSets/Segmentation/val.txt')
    assert len(ds) == 2 and ds.metainfo['classes'] == VOC_CLASSES
    for k in range(2):
        gt = ds[k]['data_samples'].gt_sem_seg.data.numpy()[0]
        expected = voc_label(len(TRAIN_IDS) + k)
        np.testing.assert_array_equal(gt, expected)
        assert set(np.unique(gt)) <= set(range(21)) | {255}
        assert 255 in gt


def test_unimatch_lines_and_ids_give_the_same_files(tmp_path):
    root = make_voc(str(tmp_path))
    split = tmp_path / 'labeled.txt'
    split.write_text('\n'.join(unimatch_lines(TRAIN_IDS[1:3])))  # no final \n
    by_lines = build(root, ann_file=str(split))
    (tmp_path / 'ids.txt').write_text('\n'.join(TRAIN_IDS[1:3]) + '\n')
    by_ids = build(root, ann_file=str(tmp_path / 'ids.txt'))
    for ds in (by_lines, by_ids):
        infos = [ds.get_data_info(i) for i in range(len(ds))]
        assert [osp.basename(i['img_path']) for i in infos] == \
            ['2007_000039.jpg', '2008_000008.jpg']
        assert infos[0]['seg_map_path'] == osp.join(
            root, 'SegmentationClass', '2007_000039.png')
    gt = by_lines[1]['data_samples'].gt_sem_seg.data.numpy()[0]
    np.testing.assert_array_equal(gt, voc_label(2))


def test_published_split_from_cache(tmp_path, monkeypatch):
    import hashlib

    from mmsamptx.datasets import published_splits as ps
    root = make_voc(str(tmp_path / 'data'))
    cache = tmp_path / 'cache'
    path = cache / 'pascal' / '92' / 'labeled.txt'
    path.parent.mkdir(parents=True)
    path.write_text('\n'.join(unimatch_lines(VAL_IDS)))
    monkeypatch.setitem(ps.PUBLISHED_SPLITS, 'pascal/92',
                        ps.PUBLISHED_SPLITS['pascal/92']._replace(
                            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                            lines=2))
    ds = build(root, published_split='92', splits_dir=str(cache))
    assert len(ds) == 2 and ds.published_split == '92'
    with pytest.raises(ValueError, match='not both'):
        build(root, published_split='pascal/92', splits_dir=str(cache),
              ann_file='x.txt')
    with pytest.raises(ValueError, match='pascal/1464'):
        build(root, published_split='pascal/93', splits_dir=str(cache))


def test_missing_files_name_the_path(tmp_path):
    root = make_voc(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=re.escape(
            str(tmp_path / 'nowhere'))):
        build(str(tmp_path / 'nowhere'), ann_file='val.txt')
    with pytest.raises(FileNotFoundError, match=re.escape(
            osp.join(root, 'ImageSets', 'Segmentation', 'test.txt'))):
        build(root, ann_file='ImageSets/Segmentation/test.txt')
    with pytest.raises(ValueError, match='published_split'):
        build(root)
    os.remove(osp.join(root, 'SegmentationClass', VAL_IDS[1] + '.png'))
    with pytest.raises(FileNotFoundError) as e:
        build(root, ann_file='ImageSets/Segmentation/val.txt')
    assert osp.join(root, 'SegmentationClass', VAL_IDS[1] + '.png') in \
        str(e.value) and 'line 2' in str(e.value)
    os.rename(osp.join(root, 'JPEGImages'), osp.join(root, 'images'))
    with pytest.raises(FileNotFoundError, match=re.escape(
            osp.join(root, 'JPEGImages'))):
        build(root, ann_file='ImageSets/Segmentation/train.txt')


def test_class_pairs_exclude_background(tmp_path):
    root = make_voc(str(tmp_path))
    pairs = ClassPairDataset(
        dict(type='PascalVOCSplitDataset', data_root=root,
             ann_file='ImageSets/Segmentation/trainval.txt',
             pipeline=PIPELINE),
        exclude_classes=[0], cache_dir=False)
    classes = {pairs.pair(i)[1] for i in range(len(pairs))}
    assert classes and classes <= set(range(1, 21))
    ds = pairs.dataset
    expected = set()
    for k in range(len(ds)):
        stem = osp.basename(ds.get_data_info(k)['img_path'])[:-4]
        lab = voc_label((TRAIN_IDS + VAL_IDS).index(stem))
        expected |= set(np.unique(lab).tolist()) - {0, 255}
    assert classes == expected
    sample = pairs[0]
    assert 1 <= sample['data_samples'].metainfo['sample_class'] <= 20


def test_text_names_and_synonyms():
    assert len(VOC_TEXT_NAMES) == 20 and len(VOC_CLASSES) == 21
    assert VOC_CLASSES[0] == 'background'
    assert VOC_TEXT_NAME_OF_CLASS['diningtable'] == 'dining table'
    assert VOC_TEXT_NAME_OF_CLASS['pottedplant'] == 'potted plant'
    assert VOC_TEXT_NAME_OF_CLASS['tvmonitor'] == 'tv'
    assert sum(a != b for a, b in VOC_TEXT_NAME_OF_CLASS.items()) == 3
    for name, strings in VOC_SYNONYMS.items():
        assert name in VOC_TEXT_NAMES and strings[0] == name
    assert VOC_SYNONYMS['aeroplane'] == ['aeroplane', 'airplane', 'plane',
                                         'aircraft', 'glider']
    assert VOC_SYNONYMS['person'] == ['person', 'people', 'baby', 'face']


@pytest.mark.skipif(not osp.isdir(SPLITS), reason='shared split files absent')
@pytest.mark.parametrize('name,lines', [('92/labeled.txt', 92),
                                        ('183/labeled.txt', 183),
                                        ('366/labeled.txt', 366),
                                        ('732/labeled.txt', 732),
                                        ('1464/labeled.txt', 1464),
                                        ('val.txt', 1449)])
def test_published_lists_hold_voc_ids(name, lines):
    from mmsamptx.datasets.utils import parse_split_file
    entries = parse_split_file(osp.join(SPLITS, name))
    assert len(entries) == lines
    for e in entries:
        assert re.fullmatch(r'20(0[7-9]|1[01])_\d{6}', e.img_id), e.text
        assert e.img_path == f'JPEGImages/{e.img_id}.jpg'
        assert e.seg_path == f'SegmentationClass/{e.img_id}.png'
    if name == '92/labeled.txt':  # the authors' docstring example
        assert entries[1].img_id == '2010_004493'


# ------------------------------------------------------------- converter
def test_verify_passes_and_counts(tmp_path, capsys):
    tool = load_tool()
    make_voc(str(tmp_path))
    assert tool.main(['verify', str(tmp_path), '--expect', '6']) == 0
    out = capsys.readouterr().out
    assert 'trainval' in out and '6 listed, 6 images and 6 labels' in out
    assert 'aeroplane' in out
    tool.main(['verify', str(tmp_path / 'VOCdevkit'), '--split', 'val'])
    assert '2 listed' in capsys.readouterr().out


def test_verify_names_each_fault(tmp_path, capsys):
    tool = load_tool()
    root = make_voc(str(tmp_path))
    seg = osp.join(root, 'SegmentationClass')
    missing = osp.join(seg, TRAIN_IDS[0] + '.png')
    os.remove(missing)
    small = osp.join(seg, TRAIN_IDS[1] + '.png')
    write_palette_png(small, voc_label(1, 8, 14))
    bad = osp.join(seg, TRAIN_IDS[2] + '.png')
    lab = voc_label(2)
    lab[0, 0] = 21
    write_palette_png(bad, lab)
    with pytest.raises(SystemExit) as e:
        tool.main(['verify', root, '--split', 'train', '--expect', '4'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4, err
    assert missing in err[0] and 'does not exist' in err[0]
    assert small in err[1] and '14x8' in err[1] and '14x10' in err[1]
    assert bad in err[2] and '[21]' in err[2]
    assert 'expected 4' in err[3] and '3 complete' in err[3]


def test_verify_rgb_label_is_a_fault(tmp_path, capsys):
    tool = load_tool()
    root = make_voc(str(tmp_path))
    png = osp.join(root, 'SegmentationClass', VAL_IDS[0] + '.png')
    with Image.open(png) as im:
        im.convert('RGB').save(png)
    with pytest.raises(SystemExit):
        tool.main(['verify', root, '--split', 'val'])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and png in err[0] and 'single-channel' in err[0]


def test_verify_bad_input_exits_2_with_one_line(tmp_path, capsys):
    tool = load_tool()
    with pytest.raises(SystemExit) as e:
        tool.main(['verify', str(tmp_path / 'none')])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert osp.join(str(tmp_path / 'none'), 'JPEGImages') in err
    make_voc(str(tmp_path))
    with pytest.raises(SystemExit) as e:
        tool.main(['verify', str(tmp_path), '--split', '1_64'])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pascal/92' in err \
        and 'trainval' in err


def test_published_command_places_the_list(tmp_path, capsys, monkeypatch):
    import hashlib

    from test_datasets.miniature import serve_folder

    from mmsamptx.datasets import published_splits as ps
    tool = load_tool()
    root = make_voc(str(tmp_path / 'data'))
    served = tmp_path / 'served' / 'pascal' / '92' / 'labeled.txt'
    served.parent.mkdir(parents=True)
    served.write_text('\n'.join(unimatch_lines(VAL_IDS)))
    data = served.read_bytes()
    monkeypatch.setitem(ps.PUBLISHED_SPLITS, 'pascal/92',
                        ps.PUBLISHED_SPLITS['pascal/92']._replace(
                            sha256=hashlib.sha256(data).hexdigest(), lines=2))
    monkeypatch.delenv(ps.ENV_DIR, raising=False)
    monkeypatch.delenv(ps.ENV_URL, raising=False)
    out = tmp_path / 'splits'
    with serve_folder(tmp_path / 'served') as (url, _):
        tool.main(['published', '92', '--out', str(out), '--root', root,
                   '--splits-dir', str(tmp_path / 'cache'), '--base-url', url])
    placed = out / 'pascal' / '92' / 'labeled.txt'
    assert placed.read_bytes() == data
    assert 'pascal/92: 2 lines, sha256 ok' in capsys.readouterr().out
    # the placed folder is a split cache the dataset reads offline
    ds = build(root, published_split='pascal/92', splits_dir=str(out))
    assert len(ds) == 2
    # a file the list names is missing: exit 2, one line naming it
    os.remove(osp.join(root, 'JPEGImages', VAL_IDS[0] + '.jpg'))
    with pytest.raises(SystemExit) as e:
        tool.main(['published', '92', '--root', root,
                   '--splits-dir', str(out)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert osp.join(root, 'JPEGImages', VAL_IDS[0] + '.jpg') in err


def test_download_offline_message_and_placed_archive(tmp_path, capsys):
    import tarfile

    from test_datasets.miniature import closed_port_url
    tool = load_tool()
    url = closed_port_url() + '/VOCtrainval_11-May-2012.tar'
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as e:
        tool.main(['download', '--out', str(out), '--url', url])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and url in err
    assert str(out / 'VOCtrainval_11-May-2012.tar') in err
    assert not list(out.glob('*.tar'))  # no partial archive left
    make_voc(str(tmp_path / 'src'))
    out.mkdir(exist_ok=True)
    with tarfile.open(out / 'VOCtrainval_11-May-2012.tar', 'w') as tar:
        tar.add(tmp_path / 'src' / 'VOCdevkit', arcname='VOCdevkit')
    root = download_voc(str(out), url)
    assert root == str(out / 'VOCdevkit' / 'VOC2012')
    assert osp.isfile(osp.join(root, 'SegmentationClass',
                               VAL_IDS[1] + '.png'))
    assert download_voc(str(out), url) == root  # unpacked once
