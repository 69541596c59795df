"""PTSAM's dataset converters on miniatures of each dataset's official layout.

Each converter runs in-process (``main(argv)``) on a generated miniature in
the source's own file names and formats; the masks it writes must equal the
foreground the miniature drew, pixel for pixel, and its images must be the
official files byte for byte. Bad input ends in one ``error:`` line naming
the fault, with exit status 2.
"""
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image
from test_datasets import ptsam_miniatures as pm

ROOT = osp.join(osp.dirname(__file__), '..', '..')


def load_tool(name):
    path = osp.join(ROOT, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'ptsam_tool_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_error(tool, argv, capsys):
    """Run a tool expected to fail; return its one stderr line."""
    with pytest.raises(SystemExit) as exc:
        tool.main(argv)
    assert exc.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in lines if 'error: ' in ln]  # beside progress bars
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


def source_image(name, raw, split, sid):
    return dict(
        organoid_basic=lambda: osp.join(raw, 'OrganoidBasic_v20211206', split,
                                        sid + '_img.jpg'),
        em_particles=lambda: osp.join(raw, 'images', sid + '.png'),
        livecell=lambda: osp.join(raw, 'images', pm.LIVECELL_DIRS[split],
                                  sid + '.tif'),
        kvasir_seg=lambda: osp.join(raw, 'Kvasir-SEG', 'images',
                                    sid + '.jpg'))[name]()


@pytest.mark.parametrize('name', sorted(pm.RAW_MAKERS))
def test_convert_gives_exact_masks_and_verify_passes(name, tmp_path, capsys):
    raw, out = str(tmp_path / 'raw'), str(tmp_path / 'out')
    expected = pm.RAW_MAKERS[name](raw)
    tool = load_tool(name)
    assert tool.main(['convert', raw, '--out', out]) == 0
    counts = {}
    for (split, sid), fg in expected.items():
        counts[split] = counts.get(split, 0) + 1
        mask = np.asarray(Image.open(osp.join(out, split, 'masks',
                                              sid + '.png')))
        assert mask.dtype == np.uint8 and mask.ndim == 2
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, fg, err_msg=f'{split}/{sid}')
        src = source_image(name, raw, split, sid)
        dst = osp.join(out, split, 'images', sid + osp.splitext(src)[1])
        with open(src, 'rb') as a, open(dst, 'rb') as b:
            assert a.read() == b.read()
    for split, n in counts.items():
        assert len(os.listdir(osp.join(out, split, 'masks'))) == n
    assert counts == pm.COUNTS[name]
    capsys.readouterr()
    if tool.EXPECTED:  # the source's published counts are checked
        err = run_error(tool, ['verify', out], capsys)
        assert f"split 'train' of {out} has {counts['train']} image/mask " \
            f"pairs, expected {tool.EXPECTED['train']}" in err
    tool.EXPECTED = dict(pm.COUNTS[name])  # the miniature's counts
    assert tool.main(['verify', out]) == 0
    printed = capsys.readouterr().out
    for split, n in counts.items():
        empty = sum(not expected[k].any() for k in expected if k[0] == split)
        assert f'{split}: {n} pairs, {empty} with an empty mask' in printed
    split = sorted(counts)[0]
    err = run_error(tool, ['verify', out, '--split', split, '--expect',
                           str(counts[split] + 1)], capsys)
    assert f'has {counts[split]} image/mask pairs, expected ' \
        f'{counts[split] + 1}' in err


def test_livecell_per_cell_type_folders(tmp_path):
    from mmsamptx.datasets.livecell import convert_livecell
    raw, out = str(tmp_path / 'raw'), str(tmp_path / 'out')
    expected = pm.make_livecell_raw(raw, per_cell_type=True)
    assert convert_livecell(raw, out) == pm.COUNTS['livecell']
    for (split, sid), fg in expected.items():
        mask = np.asarray(Image.open(osp.join(out, split, 'masks',
                                              sid + '.png')))
        np.testing.assert_array_equal(mask == 255, fg)


def test_livecell_json_and_files_disagree(tmp_path, capsys):
    raw = str(tmp_path / 'raw')
    pm.make_livecell_raw(raw)
    ann = osp.join(raw, 'annotations', 'LIVECell', 'livecell_coco_train.json')
    with open(ann) as f:
        data = json.load(f)
    gone = data['images'][1]['file_name']
    os.remove(osp.join(raw, 'images', 'livecell_train_val_images', gone))
    err = run_error(load_tool('livecell'),
                    ['convert', raw, '--out', str(tmp_path / 'out')], capsys)
    assert 'livecell_coco_train.json lists 1 image(s) not found' in err
    assert gone in err
    # The list and a file disagree on size.
    pm.make_livecell_raw(raw)
    data['images'][0]['width'] += 1
    with open(ann, 'w') as f:
        json.dump(data, f)
    err = run_error(load_tool('livecell'),
                    ['convert', raw, '--out', str(tmp_path / 'out2')], capsys)
    assert 'disagree on size' in err and data['images'][0]['file_name'] in err
    # An annotation of an image the list does not hold.
    data['images'] = data['images'][1:]
    with open(ann, 'w') as f:
        json.dump(data, f)
    err = run_error(load_tool('livecell'),
                    ['convert', raw, '--out', str(tmp_path / 'out3')], capsys)
    assert 'annotations name image ids' in err


def test_kvasir_mask_of_another_size(tmp_path, capsys):
    raw = str(tmp_path / 'raw')
    expected = pm.make_kvasir_raw(raw)
    sid = sorted(s for sp, s in expected if sp == 'train')[0]
    mask = osp.join(raw, 'Kvasir-SEG', 'masks', sid + '.jpg')
    Image.open(mask).resize((20, 10)).save(mask)
    err = run_error(load_tool('kvasir_seg'),
                    ['convert', raw, '--out', str(tmp_path / 'out')], capsys)
    assert f'Kvasir-SEG mask {mask} is 20x10 but its image' in err


def test_listed_id_without_files_named(tmp_path, capsys):
    raw = str(tmp_path / 'raw')
    pm.make_emps_raw(raw)
    with open(osp.join(raw, 'test.csv'), 'a') as f:
        f.write('\ndeadbeef00')
    err = run_error(load_tool('em_particles'),
                    ['convert', raw, '--out', str(tmp_path / 'out')], capsys)
    assert "lists 'deadbeef00' but its image" in err and 'test.csv' in err


def test_few_shot_lists(tmp_path, capsys):
    from mmsamptx.datasets.utils import read_split_file, seeded_subset
    data = pm.build_converted('em_particles', str(tmp_path), num_shots=1)
    tool = load_tool('ptsam_few_shot')
    assert tool.main([data, '--dataset', 'em_particles', '--num-shots', '2',
                      '3', '--seed', '0', '1']) == 0
    train_ids = sorted(k[1] for k in pm.make_emps_raw(str(tmp_path / 'x'))
                       if k[0] == 'train')
    for n in (2, 3):
        for seed in (0, 1):
            ids = read_split_file(osp.join(data, 'splits',
                                           f'train_{n}shot_seed{seed}.txt'))
            assert ids == seeded_subset(train_ids, n, seed)
    err = run_error(tool, [data, '--dataset', 'em_particles', '--num-shots',
                           '5'], capsys)
    assert "num_shots=5 is larger than split 'train'" in err
    assert '(4 images)' in err
    err = run_error(tool, [data, '--dataset', 'em_particles', '--split',
                           'eval'], capsys)
    assert "--split must be one of ('train', 'test')" in err


def test_download_offline_names_url_and_place(tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*a, **k):
        raise urllib.error.URLError('no network')

    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    from mmsamptx.datasets.organoid_basic import ORGANOID_URL
    err = run_error(load_tool('organoid_basic'),
                    ['download', '--out', str(tmp_path)], capsys)
    assert ORGANOID_URL in err
    assert osp.join(str(tmp_path), 'OrganoidBasic_v20211206.zip') in err
    # A placed file with the wrong content fails its checksum, named.
    from mmsamptx.datasets.kvasir_seg import KVASIR_SPLIT_SHA256
    with open(tmp_path / 'train.txt', 'w') as f:
        f.write('cju0qkwl35piu0993l0dewei2\n')
    err = run_error(load_tool('kvasir_seg'),
                    ['download', '--out', str(tmp_path)], capsys)
    assert 'train.txt has sha256' in err
    assert KVASIR_SPLIT_SHA256['train'] in err


def test_download_unpacks_a_placed_archive(tmp_path, monkeypatch):
    import shutil
    import urllib.request

    from mmsamptx.datasets.em_particles import EMPS_COMMIT, download_emps

    def offline(*a, **k):
        raise AssertionError('must not download a placed archive')

    monkeypatch.setattr(urllib.request, 'urlopen', offline)
    src = tmp_path / 'src' / f'emps-{EMPS_COMMIT}'
    pm.make_emps_raw(str(src))
    out = tmp_path / 'out'
    out.mkdir()
    shutil.make_archive(str(out / f'emps-{EMPS_COMMIT}'), 'zip',
                        str(tmp_path / 'src'))
    root = download_emps(str(out))
    assert root == str(out / f'emps-{EMPS_COMMIT}')
    assert osp.isfile(osp.join(root, 'train.csv'))
