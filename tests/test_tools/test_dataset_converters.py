"""Dataset converters on generated miniatures of each benchmark's official files."""
import importlib.util
import os
import os.path as osp
import sys

import cv2
import numpy as np
import pytest
from test_datasets.miniature import make_ade

from mmsamptx.datasets.utils import (DatasetVerificationError, read_split_file,
                                     seeded_subset, split_size)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_tool(name):
    """Import tools/dataset_converters/<name>.py as a module."""
    path = osp.join(ROOT, 'tools', 'dataset_converters', name + '.py')
    spec = importlib.util.spec_from_file_location(f'converter_{name}', path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so pool workers can pickle its functions
    spec.loader.exec_module(module)
    return module


def no_temp_files(folder):
    """True when no atomic_write temporary (``.*.tmp``) is left in folder."""
    for _, _, files in os.walk(folder):
        if any(f.endswith('.tmp') for f in files):
            return False
    return True


def check_split(ids, pool, size):
    assert len(ids) == size
    assert ids == sorted(set(ids))
    assert set(ids) <= set(pool)


# --------------------------------------------------------------- split rules
def test_split_size_rule_is_ceil():
    assert split_size(20210, 64) == 316
    assert split_size(118287, 512) == 232  # round() would give 231
    assert split_size(3, 64) == 1
    with pytest.raises(ValueError):
        split_size(0, 4)


def test_seeded_subset_is_order_independent():
    ids = [f'id{i:03d}' for i in range(50)]
    a = seeded_subset(ids, 7, seed=3)
    assert a == seeded_subset(list(reversed(ids)), 7, seed=3)
    assert a != seeded_subset(ids, 7, seed=4)
    check_split(a, ids, 7)


# --------------------------------------------------------------------- ADE20K
def test_ade20k_verify_and_split(tmp_path):
    ade = load_tool('ade20k')
    root = make_ade(str(tmp_path / 'data'), n_train=10, n_val=3)
    reports = ade.verify(root, expected_counts=dict(training=10, validation=3))
    assert reports['training']['num_images'] == 10
    # image i holds raw classes i+1 and 7i+1 -> indices i and 7i
    hist = reports['training']['image_histogram']
    assert hist[1] == 1 and hist[7] == 2 and hist[0] == 0 and sum(hist) == 20
    assert reports['training']['images_without_labels'] == []
    with pytest.raises(ValueError, match='expected 20210'):
        ade.verify(root)

    out = tmp_path / 'splits' / 'ade20k' / '1_4' / 'seed0'
    ids = ade.make_split(root, denom=4, seed=0, out_dir=str(out))
    pool = [f'ADE_train_{i:08d}' for i in range(1, 11)]
    check_split(ids, pool, 3)  # ceil(10 / 4)
    assert ids == ['ADE_train_00000003', 'ADE_train_00000005',
                   'ADE_train_00000009']
    assert read_split_file(str(out / 'labeled.txt')) == ids
    unl = read_split_file(str(out / 'unlabeled.txt'))
    assert sorted(unl + ids) == pool
    # CLI entry point writes the same split
    ade.main(['split', root, '--denom', '4', '--seed', '0', '--out',
              str(tmp_path / 'cli')])
    assert read_split_file(str(tmp_path / 'cli' / 'labeled.txt')) == ids
    assert no_temp_files(str(tmp_path))


def test_ade20k_bad_inputs_are_named(tmp_path):
    ade = load_tool('ade20k')
    root = make_ade(str(tmp_path), n_train=6, n_val=2)
    img_dir = osp.join(root, 'images', 'training')
    ann_dir = osp.join(root, 'annotations', 'training')
    # truncated image
    p = osp.join(img_dir, 'ADE_train_00000001.jpg')
    data = open(p, 'rb').read()
    open(p, 'wb').write(data[:len(data) // 2])
    # missing annotation
    os.remove(osp.join(ann_dir, 'ADE_train_00000002.png'))
    # mask size differs from its image
    cv2.imwrite(osp.join(ann_dir, 'ADE_train_00000003.png'),
                np.ones((5, 5), np.uint8))
    # label value out of range (151 > 150 classes)
    lab = np.ones((12, 16), np.uint8)
    lab[0, 0] = 151
    cv2.imwrite(osp.join(ann_dir, 'ADE_train_00000004.png'), lab)
    # corrupt label
    open(osp.join(ann_dir, 'ADE_train_00000005.png'), 'wb').write(b'notapng')
    with pytest.raises(DatasetVerificationError) as e:
        ade.verify(root, expected_counts=None)
    msg = str(e.value)
    assert 'ADE_train_00000001.jpg is corrupt or truncated' in msg
    assert 'ADE_train_00000002.png' in msg and 'does not exist' in msg
    assert 'ADE_train_00000003.png is 5x5 (WxH) but its image' in msg
    assert 'ADE_train_00000004.png has values [151] outside' in msg
    assert 'ADE_train_00000005.png is corrupt or truncated' in msg
    assert 'ADE_train_00000006' not in msg
    with pytest.raises(FileNotFoundError, match='images/training'):
        ade.verify(str(tmp_path / 'nowhere'))


def test_ade20k_download_offline_message(tmp_path):
    ade = load_tool('ade20k')
    with pytest.raises(RuntimeError) as e:
        ade.download(str(tmp_path), url='http://127.0.0.1:9/none.zip')
    msg = str(e.value)
    assert 'ADEChallengeData2016.zip' in msg
    assert str(tmp_path / 'ADEChallengeData2016.zip') in msg
    assert not (tmp_path / 'ADEChallengeData2016.zip').exists()
    assert no_temp_files(str(tmp_path))


def test_ade20k_extract_from_placed_archive(tmp_path):
    import zipfile
    ade = load_tool('ade20k')
    src = make_ade(str(tmp_path / 'src'), n_train=2, n_val=1)
    out = tmp_path / 'out'
    out.mkdir()
    with zipfile.ZipFile(out / 'ADEChallengeData2016.zip', 'w') as z:
        for dirpath, _, files in os.walk(src):
            for f in files:
                full = osp.join(dirpath, f)
                z.write(full, osp.relpath(full, osp.dirname(src)))
    root = ade.download(str(out))
    assert ade.verify(root, dict(training=2, validation=1))
    assert osp.isfile(osp.join(root, '.extracted'))


# ----------------------------------------------------------------------- COCO
def read_png(path):
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_coco_convert_exact_labels_and_split(tmp_path):
    from test_datasets.miniature import expected_coco_train_labels, make_coco
    coco = load_tool('coco_object')
    root = make_coco(str(tmp_path / 'coco'))
    counts = coco.convert(root, workers=2)
    assert counts == dict(train2017=3, val2017=1)
    for stem, expected in expected_coco_train_labels().items():
        got = read_png(osp.join(root, 'masks', 'train2017', stem + '.png'))
        np.testing.assert_array_equal(got, expected, err_msg=stem)
    val = read_png(osp.join(root, 'masks', 'val2017', '000000000007.png'))
    assert val[1:3, 1:4].tolist() == [[80] * 3] * 2 and val.sum() == 80 * 6
    rep = coco.verify(root, expected_counts=dict(train2017=3, val2017=1))
    assert rep['train2017']['images_without_labels'] == [
        osp.join(root, 'train2017', '000000000003.jpg')]
    hist = rep['train2017']['image_histogram']
    assert hist[1] == hist[17] == hist[3] == hist[80] == 1 and hist[0] == 3

    ids = coco.make_split(root, denom=2, seed=0, out_dir=str(tmp_path / 's'))
    pool = ['000000000001', '000000000002', '000000000003']
    check_split(ids, pool, 2)  # ceil(3 / 2)
    assert ids == ['000000000002', '000000000003']
    assert read_split_file(str(tmp_path / 's' / 'labeled.txt')) == ids
    assert no_temp_files(root)


def test_coco_crowd_modes(tmp_path):
    from test_datasets.miniature import make_coco
    coco = load_tool('coco_object')
    root = make_coco(str(tmp_path / 'coco'))
    for mode, value in (('ignore', 255), ('skip', 0)):
        out = tmp_path / mode
        coco.convert(root, subsets=['train2017'], out_dir=str(out), workers=0,
                     crowd=mode)
        lab = read_png(out / 'train2017' / '000000000002.png')
        assert (lab[10:16, 2:8] == value).all() and lab[0, 20] == 80


def test_coco_interrupted_conversion_resumes(tmp_path, monkeypatch):
    from test_datasets.miniature import expected_coco_train_labels, make_coco
    coco = load_tool('coco_object')
    root = make_coco(str(tmp_path / 'coco'))
    real = coco.write_png
    calls = []

    def failing(path, arr):
        calls.append(path)
        if len(calls) == 2:
            # die half-way through writing the second PNG
            from mmsamptx.utils import atomic_write
            with atomic_write(path, 'wb') as f:
                f.write(b'\x89PNG half')
                raise KeyboardInterrupt
        real(path, arr)

    monkeypatch.setattr(coco, 'write_png', failing)
    with pytest.raises(KeyboardInterrupt):
        coco.convert(root, subsets=['train2017'], workers=0)
    out = osp.join(root, 'masks', 'train2017')
    assert sorted(os.listdir(out)) == ['000000000001.png']
    monkeypatch.setattr(coco, 'write_png', real)
    coco.convert(root, subsets=['train2017'], workers=0)
    for stem, expected in expected_coco_train_labels().items():
        np.testing.assert_array_equal(read_png(osp.join(out, stem + '.png')),
                                      expected)


def test_coco_bad_inputs(tmp_path):
    import json

    from test_datasets.miniature import make_coco
    coco = load_tool('coco_object')
    root = make_coco(str(tmp_path / 'coco'))
    ann = osp.join(root, 'annotations', 'instances_val2017.json')
    os.remove(ann)
    with pytest.raises(FileNotFoundError, match='instances_val2017.json'):
        coco.convert(root, workers=0)
    with open(ann, 'w') as f:
        f.write('{"images": [')
    with pytest.raises(ValueError, match='instances_val2017.json is not valid'):
        coco.convert(root, subsets=['val2017'], workers=0)
    with open(ann, 'w') as f:
        json.dump(dict(images=[], annotations=[],
                       categories=[dict(id=12, name='street sign')]), f)
    with pytest.raises(ValueError, match=r'category ids \[12\]'):
        coco.convert(root, subsets=['val2017'], workers=0)


# ------------------------------------------------------------------- few-shot
def test_dsb2018_convert_verify_split(tmp_path):
    from test_datasets.miniature import dsb_union, make_dsb
    fs = load_tool('few_shot_binary')
    stage = make_dsb(str(tmp_path / 'raw'), n=5)
    out = str(tmp_path / 'dsb')
    assert fs.convert_dsb2018(stage, out, workers=2) == 5
    ids = sorted(os.listdir(stage))
    for i, sid in enumerate(ids):
        m = read_png(osp.join(out, 'masks', sid + '.png'))
        np.testing.assert_array_equal(m, dsb_union(i) * 255)
        assert open(osp.join(out, 'images', sid + '.png'), 'rb').read() == \
            open(osp.join(stage, sid, 'images', sid + '.png'), 'rb').read()
    rep = fs.verify(out, expected_count=5)
    assert rep['image_histogram'] == [5, 5]
    assert rep['images_without_labels'] == []
    shots = fs.make_split(out, num_shots=2, seed=0, out_dir=str(tmp_path / 's'))
    check_split(shots, ids, 2)
    assert shots == ['00abababab', '02abababab']
    assert read_split_file(str(tmp_path / 's' / 'test.txt')) == \
        sorted(set(ids) - set(shots))
    assert no_temp_files(str(tmp_path))


def test_few_shot_bad_masks_named(tmp_path):
    from test_datasets.miniature import make_folder_binary
    fs = load_tool('few_shot_binary')
    root = make_folder_binary(str(tmp_path), n=4)
    lab = np.zeros((8, 10), np.uint8)
    lab[0, 0] = 128
    cv2.imwrite(osp.join(root, 'masks', 'cell_001.png'), lab)
    cv2.imwrite(osp.join(root, 'masks', 'cell_002.png'),
                np.zeros((3, 3), np.uint8))
    with pytest.raises(DatasetVerificationError) as e:
        fs.verify(root)
    assert 'cell_001.png has values [128] outside' in str(e.value)
    assert 'cell_002.png is 3x3 (WxH) but its image' in str(e.value)
    os.remove(osp.join(root, 'masks', 'cell_003.png'))
    with pytest.raises(ValueError, match=r"images without mask \['cell_003'\]"):
        fs.verify(root)
    stage = tmp_path / 'stage1_train' / 'abc'
    (stage / 'masks').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match='abc.png'):
        fs.convert_dsb2018(str(tmp_path / 'stage1_train'), str(tmp_path / 'o'))


# -------------------------------------------------------------------- RefCOCO
def test_refcoco_masks_and_verify(tmp_path):
    from test_datasets.miniature import make_refer
    ref = load_tool('refcoco')
    root = make_refer(str(tmp_path))
    assert ref.write_masks(root, 'refcoco', workers=2) == 3
    m = read_png(osp.join(root, 'refcoco', 'masks', '101.png'))
    expected = np.zeros((16, 20), np.uint8)
    expected[8:14, 12:18] = 1
    np.testing.assert_array_equal(m, expected)
    rep = ref.verify(root, 'refcoco', expected=False)
    assert rep['val'] == dict(refs=2, sentences=3, images=2)
    assert rep['testA'] == dict(refs=1, sentences=1, images=1)
    assert rep['testB'] == dict(refs=0, sentences=0, images=0)
    with pytest.raises(ValueError, match='train: 1 refs / 1 sentences, expected 42404 / 120624'):
        ref.verify(root, 'refcoco')
    cv2.imwrite(osp.join(root, 'refcoco', 'masks', '102.png'),
                np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match=r'102.png is \(3, 3\) but image'):
        ref.verify(root, 'refcoco', expected=False)
    os.remove(osp.join(root, 'refcoco', 'instances.json'))
    with pytest.raises(FileNotFoundError, match='refcoco/instances.json'):
        ref.write_masks(root, 'refcoco')
    assert no_temp_files(root)


# ------------------------------------------------------------------------ COD
def test_cod_verify_binarize_split(tmp_path):
    from test_datasets.miniature import COD_TRAIN, make_cod
    cod = load_tool('cod')
    root = make_cod(str(tmp_path / 'COD10K-v3'))
    rep = cod.verify(root, 'Train', expected_count=3)
    assert rep['class_histogram'] == {'bat fish': 1, 'crab': 1,
                                      'stick insect': 1}
    assert rep['images_without_labels'] == []
    rep = cod.verify(root, 'Train', include_noncam=True)
    assert rep['num_images'] == 4 and len(rep['images_without_labels']) == 1
    with pytest.raises(ValueError, match='found 3 images, expected 3040'):
        cod.verify(root, 'Train', expected_count=3040)

    ids = cod.make_split(root, str(tmp_path / 's'), seed=0, num=2)
    check_split(ids, COD_TRAIN[:3], 2)
    assert ids == ['COD10K-CAM-1-Aquatic-3-Crab-12',
                   'COD10K-CAM-2-Terrestrial-23-StickInsect-5']
    assert len(cod.make_split(root, str(tmp_path / 's2'), denom=2)) == 2

    # anti-aliased mask: verify names it, binarize fixes it
    p = osp.join(root, 'Train', 'GT_Object', COD_TRAIN[0] + '.png')
    m = read_png(p)
    m[0, 0] = 200
    m[0, 1] = 100
    cv2.imwrite(p, m)
    with pytest.raises(DatasetVerificationError,
                       match=r'BatFish-1.png has values \[100, 200\] outside'):
        cod.verify(root, 'Train')
    assert cod.binarize(root, 'Train') == 4
    fixed = read_png(osp.join(root, 'Train', 'GT_Object_bin',
                              COD_TRAIN[0] + '.png'))
    assert fixed[0, 0] == 255 and fixed[0, 1] == 0
    assert cod.verify(root, 'Train', mask_folder='GT_Object_bin')
    assert no_temp_files(root)


def test_cod_bad_pairs_named(tmp_path):
    from test_datasets.miniature import COD_TRAIN, make_cod
    cod = load_tool('cod')
    root = make_cod(str(tmp_path))
    os.remove(osp.join(root, 'Train', 'GT_Object', COD_TRAIN[1] + '.png'))
    cv2.imwrite(osp.join(root, 'Train', 'GT_Object', COD_TRAIN[2] + '.png'),
                np.zeros((4, 4), np.uint8))
    with pytest.raises(DatasetVerificationError) as e:
        cod.verify(root, 'Train')
    assert f'{COD_TRAIN[1]}.png for image' in str(e.value)
    assert f'{COD_TRAIN[2]}.png is 4x4 (WxH)' in str(e.value)


# ------------------------------------------------------------- browse_dataset
def test_browse_dataset_writes_overlays(tmp_path):
    import importlib.util as iu
    from test_datasets.miniature import make_cod
    root = make_cod(str(tmp_path / 'cod'))
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(f'''
default_scope = 'mmseg'
custom_imports = dict(imports=['mmsamptx'], allow_failed_imports=False)
train_dataloader = dict(dataset=dict(
    type='CODDataset', data_root={root!r}, split='train',
    pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
              dict(type='PackSegInputs', meta_keys=('img_path', 'class_name',
                                                    'points'))]))
''')
    spec = iu.spec_from_file_location(
        'browse_dataset', osp.join(ROOT, 'tools', 'browse_dataset.py'))
    browse = iu.module_from_spec(spec)
    spec.loader.exec_module(browse)
    out = tmp_path / 'out'
    paths = browse.browse(str(cfg), str(out), num=2)
    assert [osp.basename(p) for p in paths] == [
        '0000_COD10K-CAM-1-Aquatic-1-BatFish-1.jpg',
        '0001_COD10K-CAM-1-Aquatic-3-Crab-12.jpg']
    img = cv2.imread(paths[0])
    assert img.shape[0] > 10 and img.shape[1] >= 320
    # overlay changed object pixels (white palette) but not background ones
    raw = cv2.imread(osp.join(root, 'Train', 'Image',
                              'COD10K-CAM-1-Aquatic-1-BatFish-1.jpg'))
    assert np.abs(img[:10, :14].astype(int) - raw.astype(int)).max() > 20
    # points hook
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    import torch
    s = SegDataSample(metainfo=dict(points=[[3, 4]], expression='a cat'))
    s.gt_sem_seg = PixelData(data=torch.zeros(1, 10, 12, dtype=torch.long))
    canvas = browse.draw_sample(
        dict(inputs=torch.zeros(3, 10, 12, dtype=torch.uint8),
             data_samples=s), ('bg', 'fg'), [[0, 0, 0], [255, 255, 255]])
    assert tuple(canvas[4, 3]) == (0, 0, 255)


def test_verify_empty_dataset_raises(tmp_path):
    ade = load_tool('ade20k')
    for sub in ('images', 'annotations'):
        (tmp_path / sub / 'training').mkdir(parents=True)
    with pytest.raises(DatasetVerificationError, match='empty dataset'):
        ade.verify(str(tmp_path), expected_counts=None)


def test_command_lines(tmp_path, capsys):
    from test_datasets.miniature import (make_cod, make_coco, make_dsb,
                                         make_refer)
    coco_root = make_coco(str(tmp_path / 'coco'))
    coco = load_tool('coco_object')
    coco.main(['convert', coco_root, '--workers', '0'])
    coco.main(['verify', coco_root, '--workers', '0', '--no-count-check'])
    coco.main(['split', coco_root, '--denom', '512', '--out',
               str(tmp_path / 'cs')])
    assert len(read_split_file(str(tmp_path / 'cs' / 'labeled.txt'))) == 1
    cod_root = make_cod(str(tmp_path / 'cod'))
    load_tool('cod').main(['verify', cod_root, '--workers', '0'])
    stage = make_dsb(str(tmp_path / 'dsb'))
    fs = load_tool('few_shot_binary')
    fs.main(['dsb2018', stage, '--out', str(tmp_path / 'fs'), '--workers', '0'])
    fs.main(['verify', str(tmp_path / 'fs'), '--expect', '5', '--workers', '0'])
    refer = make_refer(str(tmp_path / 'refer'))
    rc = load_tool('refcoco')
    rc.main(['masks', refer, '--workers', '0'])
    rc.main(['verify', refer, '--no-count-check'])
    out = capsys.readouterr().out
    assert 'person' in out and 'bat fish' in out and '5 pairs' in out
    assert '   val: 2 refs, 3 sentences, 2 images' in out


def test_headline_config_reads_converter_split(tmp_path):
    """configs/samptx_ade20k_1-64.py loads the split ade20k.py writes."""
    import importlib.util as iu
    cfg_path = osp.join(ROOT, 'configs', 'samptx_ade20k_1-64.py')
    if not osp.isfile(cfg_path):
        pytest.skip('headline config not present')
    root = make_ade(str(tmp_path / 'data' / 'ade'), n_train=70, n_val=2)
    ids = load_tool('ade20k').make_split(
        root, 64, 0, osp.join(root, 'splits', '1_64', 'seed0'))
    assert len(ids) == 2  # ceil(70 / 64)
    spec = iu.spec_from_file_location(
        'browse_dataset2', osp.join(ROOT, 'tools', 'browse_dataset.py'))
    browse = iu.module_from_spec(spec)
    spec.loader.exec_module(browse)
    # the config reads the published list by default; the seeded one is an ann_file away
    train = 'train_dataloader.dataset.dataset'  # inside ClassPairDataset
    val = 'val_dataloader.dataset'
    options = dict(train={f'{train}.data_root': root, f'{train}.published_split': None,
                          f'{train}.ann_file': 'splits/1_64/seed0/labeled.txt'},
                   val={f'{val}.data_root': root, f'{val}.published_split': None})
    # each ADE image of make_ade holds two classes: the train set has their (image, class) pairs
    for split, n in (('train', 4), ('val', 2)):
        paths = browse.browse(cfg_path, str(tmp_path / split), num=5, split=split,
                              cfg_options=options[split])
        assert len(paths) == n
    assert sorted({osp.basename(p)[5:-4] for p in os.listdir(tmp_path / 'train')}) == ids


# ---------------------------------------------------- published split lists
@pytest.fixture
def served_coco_split(tmp_path, monkeypatch):
    """Serve a 2-line 'coco/1_512' list whose sha256 the table holds."""
    import hashlib

    from test_datasets.miniature import (coco_unimatch_lines, serve_folder,
                                         write_split_lines)

    from mmsamptx.datasets import published_splits as ps
    served = tmp_path / 'served'
    path = write_split_lines(str(served / 'coco' / '1_512' / 'labeled.txt'),
                             coco_unimatch_lines([1, 2]))
    data = open(path, 'rb').read()
    monkeypatch.setitem(ps.PUBLISHED_SPLITS, 'coco/1_512',
                        ps.PUBLISHED_SPLITS['coco/1_512']._replace(
                            sha256=hashlib.sha256(data).hexdigest(), lines=2))
    monkeypatch.delenv(ps.ENV_DIR, raising=False)
    monkeypatch.delenv(ps.ENV_URL, raising=False)
    with serve_folder(served) as (url, requests):
        yield url, data


def test_coco_published_command_fetches_and_checks_root(served_coco_split,
                                                        tmp_path, capsys):
    from test_datasets.miniature import make_coco
    url, data = served_coco_split
    coco = load_tool('coco_object')
    root = make_coco(str(tmp_path / 'coco'))
    cache = str(tmp_path / 'cache')
    common = ['--splits-dir', cache, '--base-url', url]
    # masks not converted yet: exit 2, one line naming the first missing file
    with pytest.raises(SystemExit) as e:
        coco.main(['published', '1_512', '--root', root] + common)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert osp.join(root, 'masks', '000000000001.png') in err
    coco.main(['convert', root, '--workers', '0', '--layout', 'unimatch'])
    coco.main(['verify', root, '--workers', '0', '--no-count-check',
               '--layout', 'unimatch'])
    out_copy = str(tmp_path / 'splits' / 'labeled.txt')
    coco.main(['published', '1_512', '--root', root, '--out', out_copy]
              + common)
    out = capsys.readouterr().out
    assert 'coco/1_512: 2 lines, sha256 ok' in out and out_copy in out
    assert open(out_copy, 'rb').read() == data
    assert open(osp.join(cache, 'coco', '1_512', 'labeled.txt'),
                'rb').read() == data


def test_published_command_bad_input_exits_2(tmp_path, capsys):
    from test_datasets.miniature import closed_port_url
    ade = load_tool('ade20k')
    with pytest.raises(SystemExit) as e:
        ade.main(['published', '1_65', '--splits-dir', str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'ade20k/1_64' in err
    base = closed_port_url()
    with pytest.raises(SystemExit) as e:
        ade.main(['published', 'val', '--splits-dir', str(tmp_path),
                  '--base-url', base])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert base + '/ade20k/val.txt' in err
    assert str(tmp_path / 'ade20k' / 'val.txt') in err


@pytest.mark.skipif(not osp.isdir('/work/shared/data/splits'),
                    reason='shared split files absent')
def test_ade20k_published_command_offline_from_placed_file(tmp_path, capsys):
    """A list placed by hand in the cache is verified without network."""
    ade = load_tool('ade20k')
    ade.main(['published', '1_64', '--splits-dir', '/work/shared/data/splits',
              '--base-url', 'http://127.0.0.1:9'])
    assert 'ade20k/1_64: 316 lines, sha256 ok' in capsys.readouterr().out


def test_coco_unimatch_layout_matches_nested(tmp_path):
    from test_datasets.miniature import make_coco
    coco = load_tool('coco_object')
    root = make_coco(str(tmp_path / 'coco'))
    coco.convert(root, workers=0)
    coco.convert(root, workers=0, out_dir=str(tmp_path / 'flat'),
                 layout='unimatch')
    for sub, stem in (('train2017', '000000000001'),
                      ('train2017', '000000000002'),
                      ('val2017', '000000000007')):
        np.testing.assert_array_equal(
            read_png(tmp_path / 'flat' / (stem + '.png')),
            read_png(osp.join(root, 'masks', sub, stem + '.png')))
    with pytest.raises(ValueError, match='layout must be one of'):
        coco.convert(root, workers=0, layout='flat')
