"""tools/train.py, tools/test.py and the dist scripts on a tiny mmseg model, CPU only.

The model (ResNetV1c-18 at 4 base channels + FCNHead) and the dataset (a few
32x32 images in ADE20K's layout) are independent of the project's SAM models.
"""
import importlib.util
import os
import os.path as osp
import subprocess

import pytest
import torch
from test_engine.tiny_seg import (PYTHON, REPO, free_port, make_ade_tiny, run_tool, tool_env,
                                  train_losses, write_config)

import mmsamptx.engine  # noqa: F401  (allow-lists mmengine's checkpoint globals here too)

N = 3  # iterations before the interruption; the full run has 2N


@pytest.fixture(scope='module')
def ade_root(tmp_path_factory):
    return make_ade_tiny(str(tmp_path_factory.mktemp('ade_tiny')))


@pytest.fixture(scope='module')
def config(ade_root, tmp_path_factory):
    """2N iterations, a checkpoint every N, polynomial LR over 2N iterations, no dropout."""
    folder = tmp_path_factory.mktemp('cfg')
    return write_config(str(folder / 'tiny_fcn.py'), ade_root, None, max_iters=2 * N,
                        val_interval=2 * N, ckpt_interval=N, sched_end=2 * N)


@pytest.fixture(scope='module')
def full_run(config, tmp_path_factory):
    """An uninterrupted 2N-iteration run of tools/train.py."""
    work_dir = str(tmp_path_factory.mktemp('full'))
    proc = run_tool(['tools/train.py', config, '--work-dir', work_dir])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return work_dir, proc


def check(proc):
    assert proc.returncode == 0, (proc.stdout[-4000:] + '\n' + proc.stderr[-4000:])


# --------------------------------------------------------------------------------------
# train, then test
# --------------------------------------------------------------------------------------
def test_train_writes_checkpoints_and_test_prints_miou(full_run, config, tmp_path):
    work_dir, proc = full_run
    out = proc.stdout + proc.stderr
    assert "backend set to 'gloo'" in out  # the config asks for nccl; CPU-only here
    assert 'AtomicCheckpointHook' in out
    last = open(osp.join(work_dir, 'last_checkpoint')).read()
    assert last == osp.join(work_dir, f'iter_{2 * N}.pth')
    assert osp.isfile(osp.join(work_dir, f'iter_{N}.pth'))
    assert torch.load(last)['meta']['iter'] == 2 * N  # weights_only=True default

    pred_dir = tmp_path / 'preds'
    test = run_tool(['tools/test.py', config, last, '--work-dir', str(tmp_path / 'test'),
                     '--out', str(pred_dir)])
    check(test)
    assert 'mIoU' in test.stdout
    summary = [line for line in test.stdout.splitlines() if line.startswith('Test metrics:')]
    assert summary and 'mIoU:' in summary[0]
    miou = float(summary[0].split('mIoU:')[1].split()[0])
    assert 0.0 <= miou <= 100.0
    assert sorted(os.listdir(pred_dir)) == ['ADE_v_00000000.png', 'ADE_v_00000001.png']


def test_missing_config_is_one_clear_line(tmp_path):
    missing = str(tmp_path / 'nope' / 'missing_config.py')
    for args in (['tools/train.py', missing], ['tools/test.py', missing, 'x.pth']):
        proc = run_tool(args)
        assert proc.returncode == 2
        assert 'Traceback' not in proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines == [f'error: config file not found: {missing}']


def test_unknown_type_names_the_type_and_suggests_custom_imports(config, tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text(open(config).read().replace("type='FCNHead'", "type='FCNHeadTypo'"))
    proc = run_tool(['tools/train.py', str(bad), '--work-dir', str(tmp_path / 'wd')])
    assert proc.returncode != 0
    assert "unknown type 'FCNHeadTypo'" in proc.stderr
    assert 'custom_imports' in proc.stderr
    # a typo in the config is a user error: one line, exit 2, no traceback
    assert proc.returncode == 2 and 'Traceback' not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith('error: ')]) == 1


# --------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------
def test_resume_continues_exactly(full_run, config, tmp_path):
    """Stop at N, `--resume` to 2N: the logged losses equal the uninterrupted run's."""
    work_dir = str(tmp_path / 'interrupted')
    first = run_tool(['tools/train.py', config, '--work-dir', work_dir,
                      '--cfg-options', f'train_cfg.max_iters={N}'])
    check(first)
    assert open(osp.join(work_dir, 'last_checkpoint')).read().endswith(f'iter_{N}.pth')

    second = run_tool(['tools/train.py', config, '--work-dir', work_dir, '--resume'])
    check(second)
    out = second.stdout + second.stderr
    assert f'iter_{N}.pth' in out and 'resumed' in out.lower()
    assert 'Refused' not in out

    expected = train_losses(full_run[0])
    got = train_losses(work_dir)
    assert sorted(expected) == list(range(1, 2 * N + 1))
    assert got == expected  # exact float equality, iteration by iteration


class WritesAFile:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def test_resume_refuses_a_checkpoint_that_runs_code(full_run, config, tmp_path):
    work_dir = tmp_path / 'evil'
    work_dir.mkdir()
    victim = tmp_path / 'created_by_unpickling.txt'
    ckpt = torch.load(osp.join(full_run[0], f'iter_{N}.pth'))
    ckpt['meta']['payload'] = WritesAFile(str(victim))
    evil = str(work_dir / f'iter_{N}.pth')
    torch.save(ckpt, evil)
    (work_dir / 'last_checkpoint').write_text(evil)

    proc = run_tool(['tools/train.py', config, '--work-dir', str(work_dir), '--resume'])
    assert proc.returncode == 1
    assert not victim.exists()
    assert 'io.open' in proc.stderr  # the refused global is named
    assert 'does not unpickle arbitrary code' in proc.stderr


# --------------------------------------------------------------------------------------
# argument handling (in-process, runner stubbed)
# --------------------------------------------------------------------------------------
def load_tool(name):
    spec = importlib.util.spec_from_file_location(f'mmsamptx_tool_{name}',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StubRunner:
    cfg = None

    def train(self):
        return None

    def test(self):
        return {'mIoU': 12.5}


@pytest.fixture
def captured(monkeypatch):
    import mmsamptx.engine as engine
    seen = {}

    def build_runner(cfg):
        seen['cfg'] = cfg
        return StubRunner()

    monkeypatch.setattr(engine, 'build_runner', build_runner)
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    return seen


def test_train_flags(config, captured, tmp_path, monkeypatch):
    train = load_tool('train')
    assert train.main([config, '--work-dir', str(tmp_path / 'w'), '--amp', '--resume',
                       '--cfg-options', 'train_cfg.max_iters=7', '--local-rank', '3']) == 0
    cfg = captured['cfg']
    assert cfg.work_dir == str(tmp_path / 'w')
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    assert cfg.resume is True and cfg.launcher == 'none'
    assert cfg.train_cfg.max_iters == 7
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    if not torch.cuda.is_available():
        assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert os.environ['LOCAL_RANK'] == '3'

    monkeypatch.delenv('LOCAL_RANK', raising=False)
    monkeypatch.chdir(tmp_path)
    assert train.main([config, '--local_rank', '0']) == 0
    cfg = captured['cfg']
    assert cfg.work_dir == osp.join('./work_dirs', 'tiny_fcn')
    assert cfg.resume is False and cfg.optim_wrapper.type == 'OptimWrapper'


def test_test_flags(config, captured, tmp_path, capsys):
    test = load_tool('test')
    ckpt = tmp_path / 'model.pth'
    StubRunner.model = torch.nn.Linear(2, 2)  # test.py loads the checkpoint into it, strictly
    torch.save({'state_dict': StubRunner.model.state_dict()}, ckpt)
    assert test.main([config, str(ckpt), '--out', str(tmp_path / 'o'), '--show-dir',
                      str(tmp_path / 's'), '--work-dir', str(tmp_path / 'w')]) == 0
    cfg = captured['cfg']
    assert cfg.load_from is None  # not mmengine's non-strict load_from
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'o')
    assert cfg.test_evaluator.keep_results is True
    assert cfg.default_hooks.visualization.draw is True
    assert cfg.visualizer.save_dir == str(tmp_path / 's')
    assert 'Test metrics: mIoU: 12.5000' in capsys.readouterr().out
    assert test.main([config, str(tmp_path / 'missing.pth')]) == 2


# --------------------------------------------------------------------------------------
# the distributed scripts: two CPU processes over gloo
# --------------------------------------------------------------------------------------
def test_dist_train_and_test_two_cpu_processes(config, tmp_path):
    """Each script gets 240 s (subprocess timeout); on 2 cores both finish in about 30 s."""
    work_dir = str(tmp_path / 'dist')
    env = tool_env()
    env['PORT'] = str(free_port())
    env['MAX_RESTARTS'] = '0'
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir,
         '--cfg-options', f'train_cfg.max_iters={N}', f'train_cfg.val_interval={N}'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    check(proc)
    out = proc.stdout + proc.stderr
    assert 'Distributed training: True' in out
    assert "backend set to 'gloo'" in out
    last = open(osp.join(work_dir, 'last_checkpoint')).read()
    assert last.endswith(f'iter_{N}.pth') and torch.load(last)['meta']['iter'] == N

    env['PORT'] = str(free_port())
    proc = subprocess.run(
        ['bash', 'tools/dist_test.sh', config, last, '2', '--work-dir', str(tmp_path / 'dt')],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    check(proc)
    assert 'mIoU' in proc.stdout
    assert proc.stdout.count('Test metrics:') == 1  # rank 0 only
    assert env['PYTHON'] == PYTHON
