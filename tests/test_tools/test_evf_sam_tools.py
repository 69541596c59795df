"""EVF-SAM through tools/train.py and tools/test.py (in-process) on the generated referring-shapes
task written in RefCOCO's layout: several expressions per image in training, cIoU and gIoU logged
in validation and testing; every EVF-SAM config parses and names the paper's split."""
import glob
import importlib.util
import os.path as osp

import pytest
from mmengine.config import Config

from mmsamptx.demo.referring_shapes import write_referring_shapes

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = osp.join(REPO, 'configs', 'evf_sam', 'evf-sam_tiny_referring-shapes.py')
PAPER = {('refcoco', 'val'): 82.4, ('refcoco', 'testA'): 84.2, ('refcoco', 'testB'): 80.2,
         ('refcoco+', 'val'): 76.5, ('refcoco+', 'testA'): 80.0, ('refcoco+', 'testB'): 71.9,
         ('refcocog', 'val'): 78.2, ('refcocog', 'test'): 78.3}


def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'mmsamptx_tool_{name}_evf',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_split_has_a_test_config_with_the_papers_ciou():
    found = {}
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'evf_sam', 'evf-sam_vit-h_refcoco*_*.py'))):
        if path.endswith('refcoco-mix.py'):
            continue
        cfg = Config.fromfile(path)
        ds = cfg.test_dataloader.dataset
        assert ds.type == 'RefCOCODataset' and ds.group_by == 'image'
        assert cfg.model.checkpoint.endswith('YxZhang/evf-sam/resolve/main/pytorch_model.bin')
        assert cfg.test_evaluator.type == 'ReferringMetric'
        found[(ds.dataset, ds.split)] = cfg.paper_ciou
    assert found == PAPER
    train = Config.fromfile(osp.join(REPO, 'configs', 'evf_sam', 'evf-sam_vit-h_refcoco-mix.py'))
    assert [d.dataset for d in train.train_dataloader.dataset.datasets] == ['refcoco', 'refcoco+', 'refcocog']
    assert all(d.split == 'train' for d in train.train_dataloader.dataset.datasets)
    assert train.train_dataloader.dataset.datasets[0].pipeline[1] == dict(type='LoadReferringMasks',
                                                                          max_expressions=3)


@pytest.fixture(scope='module')
def shapes_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('referring_shapes'))
    return write_referring_shapes(root, dict(train=6, val=2, testA=2), size=64, seed=0)


def test_train_then_test_logs_ciou_and_giou(shapes_root, tmp_path, capsys):
    opts = [f'{loader}.dataset.data_root={shapes_root}'
            for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')]
    opts += [f'model.tokenizer.model_file={shapes_root}/sentencepiece.bpe.model',
             'train_cfg.max_iters=3', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=3',
             'default_hooks.logger.interval=1']
    work = str(tmp_path / 'train')
    assert load_tool('train').main([TINY, '--work-dir', work, '--cfg-options'] + opts) == 0
    log = open(glob.glob(osp.join(work, '*', '*.log'))[0]).read()
    assert 'loss_bce' in log and 'loss_dice' in log
    assert 'EVF-SAM trainable parameters' in log
    val_line = [line for line in log.splitlines() if 'Iter(val)' in line and 'cIoU' in line]
    assert val_line and 'gIoU' in val_line[0] and 'num_expressions: 12' in val_line[0]  # 2 images x 6
    ckpt = osp.join(work, 'iter_3.pth')
    assert osp.isfile(ckpt)
    capsys.readouterr()
    rc = load_tool('test').main([TINY, ckpt, '--work-dir', str(tmp_path / 'test'), '--cfg-options']
                                + opts + ['test_dataloader.dataset.split=testA'])
    assert rc == 0
    out = capsys.readouterr().out
    summary = [line for line in out.splitlines() if line.startswith('Test metrics:')]
    assert summary and 'cIoU:' in summary[0] and 'gIoU:' in summary[0]
    assert 'num_expressions: 12.0000' in summary[0]
    ciou = float(summary[0].split('cIoU:')[1].split()[0])
    assert 0.0 <= ciou <= 100.0
