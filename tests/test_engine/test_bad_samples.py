"""SkipBadSamples + BadSampleCounterHook: a corrupt image or mask is named, then stops or skips."""
import glob
import json
import os.path as osp
import shutil

import pytest
from test_engine.fault_hooks import build_runner
from test_engine.tiny_seg import make_ade_tiny, run_tool, write_config

import mmsamptx.engine as engine
from mmsamptx.engine import BadSampleError, SkipBadSamples, check_sample_file

ITERS = 6  # batch 2 over 4 training images: every image is drawn 3 times


@pytest.fixture(scope='module')
def clean_root(tmp_path_factory):
    return make_ade_tiny(str(tmp_path_factory.mktemp('ade_tiny')))


def corrupt(clean_root, tmp_path, what='image'):
    """A copy of the dataset whose second training image (or mask) is not an image."""
    root = str(tmp_path / 'data')
    shutil.copytree(clean_root, root)
    if what == 'image':
        path = osp.join(root, 'images', 'training', 'ADE_t_00000001.jpg')
    else:
        path = osp.join(root, 'annotations', 'training', 'ADE_t_00000001.png')
    with open(path, 'wb') as f:
        f.write(b'\xff\xd8 truncated, not a JPEG or PNG at all')
    return root, path


def ade_dataset(root, pipeline=None):
    return dict(
        type='ADE20KDataset', data_root=root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=pipeline or [dict(type='LoadImageFromFile'),
                              dict(type='LoadAnnotations', reduce_zero_label=True),
                              dict(type='PackSegInputs')])


# --------------------------------------------------------------------------------------
# the wrapper on its own
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize('what', ['image', 'mask'])
def test_stop_names_the_file(clean_root, tmp_path, what):
    root, bad = corrupt(clean_root, tmp_path, what)
    dataset = SkipBadSamples(ade_dataset(root), on_error='stop')
    assert len(dataset) == 4 and dataset.metainfo['classes'][0] == 'wall'
    dataset[0]
    with pytest.raises(BadSampleError) as info:
        dataset[1]
    assert bad in str(info.value)
    assert 'cannot be decoded as an image' in str(info.value)
    assert ('img_path' if what == 'image' else 'seg_map_path') in str(info.value)


def test_skip_returns_the_next_sample_and_counts(clean_root, tmp_path):
    root, bad = corrupt(clean_root, tmp_path)
    dataset = SkipBadSamples(ade_dataset(root), on_error='skip')
    sample = dataset[1]
    assert sample['data_samples'].img_path.endswith('ADE_t_00000002.jpg')
    assert dataset.skipped == 1
    dataset[1]
    assert dataset.skipped == 2  # every replacement counts
    assert check_sample_file(bad).startswith('cannot be decoded')
    assert check_sample_file(bad + '.missing') == 'file not found'
    assert check_sample_file(osp.join(root, 'images', 'training', 'ADE_t_00000000.jpg')) is None


def test_too_many_bad_samples_in_a_row_stop(clean_root, tmp_path):
    root, _ = corrupt(clean_root, tmp_path)
    dataset = SkipBadSamples(ade_dataset(root), on_error='skip', max_consecutive=0)
    with pytest.raises(BadSampleError, match='1 bad training samples in a row'):
        dataset[1]


def test_an_error_that_is_not_the_data_is_not_skipped(clean_root, tmp_path):
    # A config mistake (an unknown decoding backend): the files themselves decode fine.
    broken = [dict(type='LoadImageFromFile', imdecode_backend='no_such_backend'),
              dict(type='LoadAnnotations', reduce_zero_label=True),
              dict(type='PackSegInputs')]
    dataset = SkipBadSamples(ade_dataset(clean_root, broken), on_error='skip')
    with pytest.raises(ValueError) as info:
        dataset[0]
    assert dataset.skipped == 0
    assert any('ADE_t_00000000.jpg' in note for note in getattr(info.value, '__notes__', []))
    anything = SkipBadSamples(ade_dataset(clean_root, broken), on_error='stop', catch='any')
    with pytest.raises(BadSampleError, match='ADE_t_00000000.jpg'):
        anything[0]


def test_configure_bad_data_wraps_once():
    from mmengine.config import Config
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='ADE20KDataset')),
                      custom_hooks=[dict(type='RandomStateHook')]))
    engine.configure_bad_data(cfg, 'skip')
    engine.configure_bad_data(cfg, 'stop')
    assert cfg.train_dataloader.dataset.type == 'SkipBadSamples'
    assert cfg.train_dataloader.dataset.on_error == 'stop'
    assert cfg.train_dataloader.dataset.dataset.type == 'ADE20KDataset'
    assert [h['type'] for h in cfg.custom_hooks] == ['RandomStateHook', 'BadSampleCounterHook']


# --------------------------------------------------------------------------------------
# in training
# --------------------------------------------------------------------------------------
def training_config(tmp_path, root, on_error):
    extra = ('train_dataloader["dataset"] = dict(type="SkipBadSamples", '
             f'on_error={on_error!r}, dataset=train_dataloader["dataset"])\n'
             "custom_hooks = [dict(type='BadSampleCounterHook')]\n")
    return write_config(str(tmp_path / 'cfg.py'), root, max_iters=ITERS, val_interval=100,
                        extra=extra)


def logged(work_dir, key):
    path, = glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        return {r['step']: r.get(key) for r in map(json.loads, f) if 'loss' in r}


def test_training_stops_naming_the_file(clean_root, tmp_path):
    root, bad = corrupt(clean_root, tmp_path)
    runner = build_runner(training_config(tmp_path, root, 'stop'), tmp_path / 'wd')
    with pytest.raises(BadSampleError, match=bad):
        runner.train()


def test_training_skips_and_logs_the_count(clean_root, tmp_path):
    root, bad = corrupt(clean_root, tmp_path)
    runner = build_runner(training_config(tmp_path, root, 'skip'), tmp_path / 'wd')
    runner.train()
    counts = logged(tmp_path / 'wd', 'bad_samples_skipped')
    assert sorted(counts) == list(range(1, ITERS + 1))
    assert counts[ITERS] == 3  # the bad image was drawn 3 times and replaced each time
    assert runner.message_hub.get_info('bad_samples_skipped') == 3
    log, = glob.glob(osp.join(str(tmp_path / 'wd'), '*', '*.log'))
    assert f'SkipBadSamples: skipped bad training sample 1: {bad}' in open(log).read()


def test_train_tool_flag_with_dataloader_workers(clean_root, tmp_path):
    """--bad-data skip on a config without the wrapper; skips made in 2 worker processes count."""
    root, bad = corrupt(clean_root, tmp_path)
    config = write_config(str(tmp_path / 'plain.py'), root, max_iters=ITERS, val_interval=100)
    work_dir = tmp_path / 'wd'
    proc = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--bad-data', 'skip',
                     '--cfg-options', 'train_dataloader.num_workers=2',
                     'train_dataloader.persistent_workers=True'])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert bad in proc.stdout + proc.stderr  # the worker's warning names the file
    assert logged(work_dir, 'bad_samples_skipped')[ITERS] >= 3

    stop = run_tool(['tools/train.py', config, '--work-dir', tmp_path / 'wd2', '--bad-data',
                     'stop', '--cfg-options', 'train_dataloader.num_workers=2'])
    assert stop.returncode == 1
    last = stop.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: bad training sample 1: {bad} (img_path): cannot be decoded')
    assert last.endswith('(in a DataLoader worker)')
