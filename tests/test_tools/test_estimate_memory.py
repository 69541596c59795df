"""tools/estimate_memory.py and mmsamptx.apis.memory: the predicted peak of a training step."""
import json
import os.path as osp
import random
import subprocess
import sys

import numpy as np
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(REPO, 'configs/demo/samptx_demo.py')  # tiny arch, batch 4, K=2: the probe path


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('estimate_memory_tool',
                                                  osp.join(REPO, 'tools/estimate_memory.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_estimate_within_25_percent_of_the_measured_step_tiny(tmp_path):
    """The probe (steps of 1 and 2 images, scaled to the batch of 4) against the full step,
    each in a fresh process (--compare), for the demo's tiny SAM-PTx on the CPU."""
    out = tmp_path / 'memory.json'
    proc = subprocess.run([sys.executable, 'tools/estimate_memory.py', DEMO, '--device', 'cpu',
                           '--compare', '--json', str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    est, measured = result['estimate'], result['measured']
    assert est['method'] == 'probed' and measured['method'] == 'measured'
    assert [(p['images'], p['warm']) for p in est['probes']] == [(1, False), (2, True), (1, True)]
    assert measured['probes'] == [dict(images=4, warm=False, peak_mib=measured['step_mib'])]
    assert measured['step_mib'] > 10  # a real step was measured
    assert abs(est['step_mib'] / measured['step_mib'] - 1) <= 0.25, result['step_error']
    assert est['model_mib'] == measured['model_mib'] > 0
    assert est['fits'] and est['device'] == 'cpu'
    line = proc.stdout.splitlines()[0]
    assert line.startswith('Training memory (probed: steps of 1 and 2 images, scaled linearly '
                           'to 4 images, 2 class(es) per image): model ')
    assert line.endswith('available on cpu: fits')
    assert 'Estimate against the measured step' in proc.stdout


def test_train_line_keeps_random_state_and_can_be_switched_off(monkeypatch, tmp_path):
    """tools/train.py's start line (log_training_memory) changes no random state (a resumed
    run must repeat an uninterrupted one) and writes no text-embedding cache; the
    environment switches it off."""
    from mmengine.config import Config

    from mmsamptx.apis.memory import ESTIMATE_ENV, log_training_memory
    cfg = Config.fromfile(DEMO)
    cfg.train_dataloader.batch_size = 1  # one measured step: the cheapest path
    cache = tmp_path / 'text-cache'
    cfg.model.text_encoder.cache_dir = str(cache)  # random-weight embeddings must not land here
    monkeypatch.setenv(ESTIMATE_ENV, '1')
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    est = log_training_memory(cfg, DEMO)
    after = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(3), np.random.seed(3), torch.manual_seed(3)
    assert after == (random.random(), np.random.rand(), torch.rand(1).item())
    assert not cache.exists() or not any(cache.iterdir())
    assert est.method == 'measured' and est.batch_size == 1 and est.step_mib > 0
    assert est.line().startswith('Training memory (measured: one training step of 1 image(s), '
                                 '2 class(es) per image): model ')
    monkeypatch.setenv(ESTIMATE_ENV, '0')
    assert log_training_memory(cfg, DEMO) is None


def test_tool_errors_are_one_line(capsys, tmp_path):
    tool = load_tool()
    assert tool.main([str(tmp_path / 'missing.py')]) == 2
    assert capsys.readouterr().err == f'error: config file not found: {tmp_path / "missing.py"}\n'
    assert tool.main([DEMO, '--measure', '--compare']) == 2
    assert capsys.readouterr().err.startswith('error: --measure and --compare exclude each other')
    assert tool.main([DEMO, '--device', 'tpu']) == 2
    assert capsys.readouterr().err.startswith("error: --device tpu: expected 'cpu'")
    evf = osp.join(REPO, 'configs/evf_sam/evf-sam_vit-h_refcoco-mix.py')  # refused before building
    assert tool.main([evf]) == 2
    assert capsys.readouterr().err == (
        f'error: {evf}: the memory estimate generates batches for ClassPromptedSAM; '
        'model.type=EVFSAM is not supported yet\n')


def test_line_says_when_it_does_not_fit():
    from mmsamptx.apis.memory import MemoryEstimate
    est = MemoryEstimate(config='c.py', device='cuda:0', method='probed', batch_size=8,
                         samples_per_image='4 class(es)', model_mib=1500.0, step_mib=30000.0,
                         available_mib=24000.0)
    assert not est.fits and est.total_mib == 31500.0
    assert est.line() == (
        'Training memory (probed: steps of 1 and 2 images, scaled linearly to 8 images, 4 class(es) '
        'per image): model 1,500 MiB + step peak 30,000 MiB = 31,500 MiB; 24,000 MiB free on cuda:0: '
        'does NOT fit: lower train_dataloader.batch_size, or checkpoint more blocks '
        '(model.backbone.with_cp=True)')
