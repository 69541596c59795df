"""Tests for OpenCLIPTextEncoder: open_clip parity, prompt ensembles, caches, freezing, errors."""
import builtins
import copy
import os

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip import pretrained as oc_pretrained

from mmengine.runner.checkpoint import load_state_dict as mmengine_load_state_dict
from mmseg.registry import MODELS
from mmsamptx.models.text_encoders import OpenCLIPTextEncoder
from mmsamptx.models.text_encoders import open_clip_text_encoder as oce

TINY = 'mmsamptx-tiny-clip'
NAMES = ['cat', 'traffic_light', 'potted-plant']


def _reference(model, model_name, names):
    """open_clip's own normalised text embeddings, (N, D)."""
    model.eval()
    tokenizer = open_clip.get_tokenizer(model_name)
    with torch.no_grad():
        return F.normalize(model.encode_text(tokenizer(names)), dim=-1)


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    """A full (image + text) tiny open_clip checkpoint and the model it came from."""
    torch.manual_seed(0)
    model = open_clip.create_model(TINY).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    torch.save(model.state_dict(), path)
    return str(path), model


def _build(tiny_ckpt, **kwargs):
    kwargs.setdefault('pretrained', tiny_ckpt[0])
    enc = MODELS.build(dict(type='OpenCLIPTextEncoder', model_name=TINY, **kwargs))
    enc.init_weights()
    return enc


def _count_text_calls(enc, monkeypatch):
    calls = []
    original = enc.clip.encode_text

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(enc.clip, 'encode_text', counting)
    return calls


def test_tiny_config_registered():
    assert TINY in open_clip.list_models()
    cfg = open_clip.get_model_config(TINY)
    assert cfg['text_cfg']['width'] == 64 and cfg['embed_dim'] == 64
    # Same BPE tokenizer as ViT-B-16.
    a = open_clip.get_tokenizer(TINY)(['a photo of a traffic_light.'])
    b = open_clip.get_tokenizer('ViT-B-16')(['a photo of a traffic_light.'])
    assert torch.equal(a, b)


def test_matches_open_clip_single_template(tiny_ckpt):
    enc = _build(tiny_ckpt, templates=('{}', ))
    out = enc.encode(NAMES)
    ref = _reference(tiny_ckpt[1], TINY, NAMES)
    assert out.shape == (3, 64) and out.dtype == torch.float32
    assert enc.embed_dim == 64
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)


def test_open_clip_checkpoint_wrappers(tiny_ckpt, tmp_path):
    # open_clip's loader unwraps {'state_dict': ...} and strips 'module.'.
    sd = {'module.' + k: v for k, v in tiny_ckpt[1].state_dict().items()}
    path = tmp_path / 'wrapped.pth'
    torch.save({'state_dict': sd, 'epoch': 3}, path)
    enc = _build(tiny_ckpt, pretrained=str(path), templates=('{}', ))
    torch.testing.assert_close(
        enc.encode(NAMES), _reference(tiny_ckpt[1], TINY, NAMES), atol=1e-6, rtol=0)


def test_matches_open_clip_vit_b16(tmp_path):
    torch.manual_seed(1)
    model = open_clip.create_model('ViT-B-16').eval()
    # Text-path keys only, to keep the file (and the test) small.
    path = tmp_path / 'vit_b16_text.pt'
    torch.save({k: v for k, v in model.state_dict().items() if not k.startswith('visual.')},
               path)
    enc = OpenCLIPTextEncoder('ViT-B-16', pretrained=str(path), templates=('{}', ))
    enc.init_weights()
    names = ['road', 'traffic_light']
    out = enc.encode(names)
    assert out.shape == (2, 512) and enc.embed_dim == 512
    torch.testing.assert_close(out, _reference(model, 'ViT-B-16', names), atol=1e-6, rtol=0)


def test_template_ensemble_by_hand(tiny_ckpt):
    templates = ('a photo of a {}.', 'there is a {} in the scene.', '{}')
    enc = _build(tiny_ckpt, templates=templates)
    out = enc.encode(NAMES)
    rows = []
    for name in NAMES:
        per_template = torch.cat(
            [_reference(tiny_ckpt[1], TINY, [t.format(name)]) for t in templates])
        mean = per_template.mean(dim=0)
        rows.append(mean / mean.norm())
    torch.testing.assert_close(out, torch.stack(rows), atol=1e-6, rtol=0)
    # Names are used as given: 'traffic_light' != 'traffic light'.
    assert not torch.allclose(enc.encode(['traffic light']), out[1:2])


def test_unit_norm_and_default_templates(tiny_ckpt):
    enc = _build(tiny_ckpt)
    assert enc.templates == oce.DEFAULT_TEMPLATES and 5 <= len(enc.templates) <= 7
    out = enc.encode(NAMES)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), atol=1e-6, rtol=0)


def test_frozen_and_eval(tiny_ckpt):
    enc = _build(tiny_ckpt)
    assert all(not p.requires_grad for p in enc.parameters())
    assert enc.clip.visual is None  # image tower dropped
    enc.train()
    assert enc.training and not enc.clip.training
    out = enc.encode(['cat'])
    assert not out.requires_grad
    torch.testing.assert_close(copy.deepcopy(enc).encode(['cat']), out, atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_returns_on_module_device(tiny_ckpt):
    enc = _build(tiny_ckpt)
    cpu = enc.encode(NAMES)
    enc.cuda()
    out = enc.encode(NAMES)  # from the memory cache
    assert out.device.type == 'cuda' and out.dtype == torch.float32
    enc.clear_cache()
    fresh = enc.encode(NAMES)  # computed on the GPU
    assert fresh.device.type == 'cuda'
    torch.testing.assert_close(fresh.cpu(), cpu, atol=1e-4, rtol=0)


def test_build_reads_nothing(monkeypatch, tiny_ckpt):
    """Constructing must not open files (nor load weights); init_weights does."""

    def no_open(*args, **kwargs):
        raise AssertionError(f'open() called while building: {args}')

    monkeypatch.setattr(builtins, 'open', no_open)
    monkeypatch.setattr(torch, 'load', no_open)
    missing = '/definitely/not/here/clip.pt'
    enc = OpenCLIPTextEncoder(TINY, pretrained=missing, cache_dir='/definitely/not/here')
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match='/definitely/not/here/clip.pt'):
        enc.init_weights()
    # A failed load can be retried once the file exists.
    enc.pretrained = tiny_ckpt[0]
    enc.init_weights()
    torch.testing.assert_close(
        enc.encode(['cat']), _build(tiny_ckpt).encode(['cat']), atol=1e-6, rtol=0)


def test_memory_cache(tiny_ckpt, monkeypatch):
    enc = _build(tiny_ckpt)
    calls = _count_text_calls(enc, monkeypatch)
    first = enc.encode(NAMES)
    assert len(calls) == 1
    first.zero_()  # callers get a copy; the cache is not aliased
    second = enc.encode(list(NAMES))
    assert len(calls) == 1
    assert torch.allclose(second.norm(dim=-1), torch.ones(3))
    enc.encode(NAMES[:2])  # a different class list is a different key
    assert len(calls) == 2
    # Loading new weights through load_state_dict invalidates the cache.
    enc.load_state_dict(enc.state_dict())
    enc.encode(NAMES)
    assert len(calls) == 3
    # ... and so does mmengine's loader (used by runner.load_checkpoint).
    mmengine_load_state_dict(enc, enc.state_dict(), strict=True)
    enc.encode(NAMES)
    assert len(calls) == 4


def test_disk_cache_roundtrip_and_corruption(tiny_ckpt, tmp_path, monkeypatch):
    cache = tmp_path / 'cache'
    enc = _build(tiny_ckpt, cache_dir=str(cache))
    expected = enc.encode(NAMES)
    files = list(cache.glob('*.pt'))
    assert len(files) == 1 and len(files[0].stem) == 64  # sha256 name

    enc2 = _build(tiny_ckpt, cache_dir=str(cache))
    calls = _count_text_calls(enc2, monkeypatch)
    torch.testing.assert_close(enc2.encode(NAMES), expected, atol=0, rtol=0)
    assert len(calls) == 0  # served from disk

    data = files[0].read_bytes()
    files[0].write_bytes(data[:len(data) // 2])  # truncate
    enc3 = _build(tiny_ckpt, cache_dir=str(cache))
    calls3 = _count_text_calls(enc3, monkeypatch)
    with pytest.warns(UserWarning, match='recomputing'):
        out3 = enc3.encode(NAMES)
    assert len(calls3) == 1
    torch.testing.assert_close(out3, expected, atol=1e-6, rtol=0)
    # The file was rewritten atomically and is valid again.
    payload = torch.load(files[0], weights_only=True)
    torch.testing.assert_close(payload['embeddings'], expected, atol=1e-6, rtol=0)


def test_disk_cache_not_shared_across_random_inits(tmp_path):
    cache = str(tmp_path / 'cache')
    torch.manual_seed(0)
    a = OpenCLIPTextEncoder(TINY, cache_dir=cache, templates=('{}', ))
    out_a = a.encode(['cat'])
    torch.manual_seed(1)
    b = OpenCLIPTextEncoder(TINY, cache_dir=cache, templates=('{}', ))
    out_b = b.encode(['cat'])
    assert not torch.allclose(out_a, out_b)
    torch.testing.assert_close(out_b, _reference(b.clip, TINY, ['cat']), atol=1e-6, rtol=0)
    assert len(os.listdir(cache)) == 2


def test_warns_when_pretrained_not_loaded(tiny_ckpt):
    enc = OpenCLIPTextEncoder(TINY, pretrained=tiny_ckpt[0])
    with pytest.warns(UserWarning, match='before init_weights'):
        enc.encode(['cat'])


def test_unknown_model_name():
    with pytest.raises(ValueError, match="'ViT-B-17'") as info:
        OpenCLIPTextEncoder('ViT-B-17')
    assert 'ViT-B-16' in str(info.value) and TINY in str(info.value)


def test_unknown_pretrained_tag():
    with pytest.raises(ValueError, match="'laion9b'") as info:
        OpenCLIPTextEncoder('ViT-B-16', pretrained='laion9b')
    assert 'laion2b_s34b_b88k' in str(info.value) and 'openai' in str(info.value)


def test_offline_tag_download_error(monkeypatch):
    fake = oc_pretrained._pcfg(hf_hub='no-such-org/CLIP-tiny-test/')
    monkeypatch.setitem(oc_pretrained._PRETRAINED, TINY, {'fake_tag': fake})

    def offline(*args, **kwargs):
        raise OSError('network is unreachable')

    monkeypatch.setattr(oc_pretrained, 'download_pretrained', offline)
    enc = OpenCLIPTextEncoder(TINY, pretrained='fake_tag')
    with pytest.raises(RuntimeError) as info:
        enc.init_weights()
    msg = str(info.value)
    if oc_pretrained.has_hf_hub():
        assert 'no-such-org/CLIP-tiny-test' in msg
    assert "pretrained='/path/to/" in msg and 'fake_tag' in msg


def test_quick_gelu_mismatch_warns(monkeypatch):
    fake = oc_pretrained._pcfg(hf_hub='no-such-org/CLIP-tiny-test/', quick_gelu=True)
    monkeypatch.setitem(oc_pretrained._PRETRAINED, TINY, {'fake_tag': fake})
    with pytest.warns(UserWarning, match='QuickGELU'):
        OpenCLIPTextEncoder(TINY, pretrained='fake_tag')


def test_bad_checkpoint_names_path(tmp_path):
    path = tmp_path / 'vit_b16_text.pt'
    torch.save({'positional_embedding': torch.zeros(77, 512)}, path)
    enc = OpenCLIPTextEncoder(TINY, pretrained=str(path))
    with pytest.raises(RuntimeError, match='vit_b16_text.pt'):
        enc.init_weights()


@pytest.mark.parametrize('names, match', [
    ([], 'empty'),
    (['cat', ''], "''"),
    (['cat', '  '], "'  '"),
    (['cat', 3], 'class_names\\[1\\] = 3'),
    (['cat', None], 'None'),
])
def test_bad_class_names(names, match):
    enc = OpenCLIPTextEncoder(TINY)
    with pytest.raises(ValueError, match=match):
        enc.encode(names)


def test_bare_string_class_names():
    with pytest.raises(TypeError, match="'cat'"):
        OpenCLIPTextEncoder(TINY).encode('cat')


@pytest.mark.parametrize('templates, exc, match', [
    (('a photo of a cat.', ), ValueError, 'a photo of a cat'),
    (('{} and {}', ), ValueError, '{} and {}'),
    (('{0} {}', ), ValueError, '{0}'),
    ((), ValueError, 'empty'),
    ('a photo of a {}.', TypeError, 'a photo of a'),
])
def test_bad_templates(templates, exc, match):
    with pytest.raises(exc, match=match.replace('{', '\\{').replace('}', '\\}')):
        OpenCLIPTextEncoder(TINY, templates=templates)


def test_unsupported_schema_and_big_vision():
    with pytest.raises(ValueError, match='hf-hub:org/repo'):
        OpenCLIPTextEncoder('hf-hub:org/repo')
    with pytest.raises(ValueError, match='weights.npz'):
        OpenCLIPTextEncoder(TINY, pretrained='weights.npz')
