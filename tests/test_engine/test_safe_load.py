"""Checkpoints load with torch.load(weights_only=True): mmengine's globals allowed, nothing else."""
import ast
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import mmsamptx.engine as engine
from mmsamptx.engine import CheckpointSecurityError, register_safe_globals

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

EXPECTED = (
    'mmengine.logging.history_buffer.HistoryBuffer',
    'numpy._core.multiarray._reconstruct',
    'numpy.ndarray',
    'numpy.dtype',
    'numpy._core.multiarray.scalar',
    'numpy.dtypes.Float64DType',
    'numpy.dtypes.Float32DType',
    'numpy.dtypes.Int64DType',
    'builtins.getattr',  # restricted stand-in, see test_getattr_is_restricted
)


class WritesAFile:
    """Unpickling this would create ``path`` (what a malicious checkpoint does)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


class GetsAnAttribute:
    """Unpickling this calls getattr(HistoryBuffer, name) through the pickle's GLOBAL getattr."""

    def __init__(self, name):
        self.name = name

    def __reduce__(self):
        return (getattr, (HistoryBuffer, self.name))


def mmengine_like_checkpoint():
    """The non-tensor parts of an mmengine training checkpoint, built with mmengine's classes."""
    hub = MessageHub.get_instance('test_safe_load_hub')
    for i in range(3):
        hub.update_scalar('train/loss', 1.0 / (i + 1))
        hub.update_scalar('train/lr', 0.01)
    hub.update_info('eta', np.float64(12.5))
    hub.update_info('best_score', np.float32(61.25))
    hub.update_info('keep_ckpt_ids', [2, 4])
    return {
        'meta': {'epoch': 0, 'iter': 4, 'seed': 0, 'dataset_meta': {'classes': ('a', 'b')}},
        'state_dict': {'w': torch.randn(2, 3), 'bn.num_batches_tracked': torch.tensor(4)},
        'message_hub': hub.state_dict(),
        'optimizer': {'state': {0: {'momentum_buffer': torch.zeros(2, 3)}},
                      'param_groups': [{'lr': 0.01, 'params': [0]}]},
        'param_schedulers': [{'last_epoch': 4, 'base_lrs': [0.01]}],
    }


def test_register_is_idempotent_and_exact():
    first = register_safe_globals()
    second = register_safe_globals()
    assert first == second == engine.SAFE_GLOBAL_NAMES
    assert tuple(first) == EXPECTED
    user = torch.serialization.get_safe_globals()
    names = {entry[1] if isinstance(entry, tuple) else f'{entry.__module__}.{entry.__qualname__}'
             for entry in user}
    assert set(EXPECTED) <= names
    # the real getattr is never allow-listed
    assert getattr not in user
    assert not any(isinstance(e, tuple) and e[0] is getattr for e in user)
    assert CheckpointLoader._get_checkpoint_loader('/some/file.pth') is engine.load_from_local_safe


def test_mmengine_checkpoint_loads_with_default_weights_only(tmp_path):
    register_safe_globals()
    path = str(tmp_path / 'ckpt.pth')
    ckpt = mmengine_like_checkpoint()
    torch.save(ckpt, path)
    loaded = torch.load(path)  # torch 2.11's default: weights_only=True
    buf = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    np.testing.assert_allclose(buf.mean(), np.mean([1.0, 0.5, 1 / 3]))
    assert loaded['message_hub']['runtime_info']['best_score'] == np.float32(61.25)
    # and through mmengine's own loading entry point
    loaded = _load_checkpoint(path, map_location='cpu')
    torch.testing.assert_close(loaded['state_dict']['w'], ckpt['state_dict']['w'])


def test_file_creating_checkpoint_is_refused(tmp_path):
    register_safe_globals()
    victim = tmp_path / 'pwned.txt'
    path = str(tmp_path / 'evil.pth')
    ckpt = mmengine_like_checkpoint()
    ckpt['meta']['payload'] = WritesAFile(str(victim))
    torch.save(ckpt, path)
    assert not victim.exists()
    with pytest.raises(CheckpointSecurityError) as info:
        _load_checkpoint(path, map_location='cpu')
    assert not victim.exists()
    message = str(info.value)
    assert info.value.refused_global is not None and 'open' in info.value.refused_global
    assert info.value.refused_global in message
    assert 'does not unpickle arbitrary code' in message
    assert path in message
    # torch's own refusal also holds without our wrapper
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    assert not victim.exists()


def test_getattr_is_restricted(tmp_path):
    register_safe_globals()
    ok = str(tmp_path / 'ok.pth')
    torch.save({'f': GetsAnAttribute('mean')}, ok)
    assert torch.load(ok)['f'] is HistoryBuffer.mean
    bad = str(tmp_path / 'bad.pth')
    torch.save({'f': GetsAnAttribute('register_statistics')}, bad)
    with pytest.raises(CheckpointSecurityError) as info:
        _load_checkpoint(bad, map_location='cpu')
    assert 'register_statistics' in str(info.value)


def test_no_weights_only_false_anywhere():
    """No call in the package or the tools passes weights_only=False (or a non-literal)."""
    offenders = []
    for folder in ('mmsamptx', 'tools'):
        for root, _, files in os.walk(osp.join(REPO, folder)):
            for name in files:
                if not name.endswith('.py'):
                    continue
                path = osp.join(root, name)
                with open(path, encoding='utf-8') as f:
                    tree = ast.parse(f.read(), path)
                for node in ast.walk(tree):
                    if isinstance(node, ast.Call):
                        for kw in node.keywords:
                            if kw.arg == 'weights_only' and not (
                                    isinstance(kw.value, ast.Constant) and kw.value.value is True):
                                offenders.append(f'{path}:{node.lineno}')
    assert offenders == []
