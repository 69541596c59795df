"""Tests for OpenCLIPTextEncoder's embedding chain: raw features, synonyms, redundant-feature subtraction,
normalisation, the SAM-PTx preset, cache keys per option, and option errors (samptx-authors.md §5)."""
import json
import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F

from mmseg.registry import MODELS
from mmsamptx.models.text_encoders import (OPENAI_IMAGENET_PROMPTS, SAMPTX_TEXT_ENCODER,
                                           OpenCLIPTextEncoder)

TINY = 'mmsamptx-tiny-clip'
NAMES = ['cat', 'traffic_light', 'potted-plant']
RAW = dict(templates=('{}', ), ensemble_normalize=False, normalize=False)
SMALL_REDUNDANT = ('a photo of a {}.', 'itap of a {}.', '{}', 'a bad photo of the {}.')


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


def _raw(model, texts):
    """open_clip's unnormalised text features, (len(texts), D)."""
    model.eval()
    with torch.no_grad():
        return model.encode_text(open_clip.get_tokenizer(TINY)(list(texts)), normalize=False)


def _redundant_by_hand(model, templates):
    """r = m/||m||, m = mean_k e_k/||e_k||, e_k the raw feature of '' in template k."""
    e = _raw(model, [t.format('') for t in templates])
    m = (e / e.norm(dim=-1, keepdim=True)).mean(dim=0)
    return (m / m.norm())[None]


def _count_text_calls(enc, monkeypatch):
    calls = []
    original = enc.clip.encode_text

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(enc.clip, 'encode_text', counting)
    return calls


def test_raw_bare_name_is_open_clip_encode_text(tiny_ckpt):
    out = _build(tiny_ckpt, **RAW).encode(NAMES)
    ref = _raw(tiny_ckpt[1], NAMES)
    # Not bit-exact: with requires_grad=False torch's MultiheadAttention takes its fused
    # path, so the frozen tower differs from the reference by float32 rounding (~1e-6).
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    # Really unnormalised: the tiny random tower's features are far from unit norm.
    assert (out.norm(dim=-1) - 1).abs().min() > 1e-2


def test_raw_feature_is_eot_after_ln_final_times_projection(tiny_ckpt):
    # The authors' t_raw [§5.2], written out from the tower's parts.
    model = tiny_ckpt[1]
    tokens = open_clip.get_tokenizer(TINY)(NAMES)
    with torch.no_grad():
        x = model.token_embedding(tokens) + model.positional_embedding
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        eot = x[torch.arange(len(NAMES)), tokens.argmax(dim=-1)]  # EOT has the largest id
        ref = eot @ model.text_projection
    out = _build(tiny_ckpt, **RAW).encode(NAMES)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_normalize_gives_unit_norm(tiny_ckpt):
    raw = _build(tiny_ckpt, **RAW).encode(NAMES)
    out = _build(tiny_ckpt, **dict(RAW, normalize=True)).encode(NAMES)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(out, raw / raw.norm(dim=-1, keepdim=True), atol=1e-6, rtol=0)


def test_redundant_feature_by_hand(tiny_ckpt):
    enc = _build(tiny_ckpt, redundant_templates=SMALL_REDUNDANT)
    r = enc.redundant_feature()
    assert r.shape == (1, 64)
    torch.testing.assert_close(r, _redundant_by_hand(tiny_ckpt[1], SMALL_REDUNDANT),
                               atol=1e-6, rtol=0)
    torch.testing.assert_close(r.norm(), torch.tensor(1.0), atol=1e-6, rtol=0)


def test_default_redundant_templates_are_open_clips_openai_imagenet(tiny_ckpt):
    assert OPENAI_IMAGENET_PROMPTS == tuple(
        t('{}') for t in open_clip.OPENAI_IMAGENET_TEMPLATES)
    assert len(OPENAI_IMAGENET_PROMPTS) == 80
    enc = _build(tiny_ckpt, **RAW, subtract_redundant=True)
    assert enc.redundant_templates == OPENAI_IMAGENET_PROMPTS
    torch.testing.assert_close(
        enc.redundant_feature(), _redundant_by_hand(tiny_ckpt[1], OPENAI_IMAGENET_PROMPTS),
        atol=1e-5, rtol=0)


@pytest.mark.parametrize('normalize', [True, False])
def test_subtraction_by_hand(tiny_ckpt, normalize):
    enc = _build(tiny_ckpt, **dict(RAW, normalize=normalize), subtract_redundant=True,
                 redundant_templates=SMALL_REDUNDANT)
    out = enc.encode(NAMES)
    diff = _raw(tiny_ckpt[1], NAMES) - _redundant_by_hand(tiny_ckpt[1], SMALL_REDUNDANT)
    ref = diff / diff.norm(dim=-1, keepdim=True) if normalize else diff
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_subtraction_after_prompt_ensemble(tiny_ckpt):
    # CLIP Surgery's demo order: r is removed from a prompt-ensembled unit embedding.
    templates = ('a photo of a {}.', 'there is a {} in the scene.')
    enc = _build(tiny_ckpt, templates=templates, subtract_redundant=True,
                 redundant_templates=SMALL_REDUNDANT)
    rows = []
    for name in NAMES:
        e = _raw(tiny_ckpt[1], [t.format(name) for t in templates])
        m = (e / e.norm(dim=-1, keepdim=True)).mean(dim=0)
        rows.append(m / m.norm())
    diff = torch.stack(rows) - _redundant_by_hand(tiny_ckpt[1], SMALL_REDUNDANT)
    torch.testing.assert_close(enc.encode(NAMES), diff / diff.norm(dim=-1, keepdim=True),
                               atol=1e-5, rtol=0)


def test_synonyms_are_the_mean_of_raw_features(tiny_ckpt):
    plane = ['aeroplane', 'airplane', 'plane', 'aircraft']
    enc = _build(tiny_ckpt, **RAW, synonyms={'aeroplane': plane, 'unused': ['x']})
    out = enc.encode(['aeroplane', 'cat'])
    model = tiny_ckpt[1]
    torch.testing.assert_close(out[0], _raw(model, plane).mean(dim=0), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1], _raw(model, ['cat'])[0], atol=1e-6, rtol=0)

    # The authors' whole chain [§5.3-5.5]: synonym mean, minus r, normalised.
    full = _build(tiny_ckpt, **dict(RAW, normalize=True), synonyms={'aeroplane': plane},
                  subtract_redundant=True, redundant_templates=SMALL_REDUNDANT)
    diff = _raw(model, plane).mean(dim=0) - _redundant_by_hand(model, SMALL_REDUNDANT)[0]
    torch.testing.assert_close(full.encode(['aeroplane'])[0], diff / diff.norm(),
                               atol=1e-5, rtol=0)


def test_synonyms_with_prompt_ensemble(tiny_ckpt):
    templates = ('a photo of a {}.', '{}')
    enc = _build(tiny_ckpt, templates=templates, synonyms={'person': ['person', 'people']})
    per_string = []
    for s in ['person', 'people']:
        e = _raw(tiny_ckpt[1], [t.format(s) for t in templates])
        m = (e / e.norm(dim=-1, keepdim=True)).mean(dim=0)
        per_string.append(m / m.norm())
    mean = torch.stack(per_string).mean(dim=0)
    torch.testing.assert_close(enc.encode(['person'])[0], mean / mean.norm(), atol=1e-6,
                               rtol=0)


def test_default_chain_is_unchanged(tiny_ckpt):
    # The class default stays the normalised prompt ensemble without subtraction.
    enc = _build(tiny_ckpt)
    assert enc.ensemble_normalize and enc.normalize and not enc.subtract_redundant
    assert enc.synonyms == {}


def test_samptx_preset(tiny_ckpt):
    assert SAMPTX_TEXT_ENCODER == dict(
        type='OpenCLIPTextEncoder', model_name='ViT-B-16-quickgelu', pretrained='openai',
        templates=('{}', ), ensemble_normalize=False, subtract_redundant=False,
        normalize=True)
    # The OpenAI ViT-B/16 weights were trained with QuickGELU: this name matches them
    # (no mismatch warning), while plain 'ViT-B-16' with 'openai' warns.
    assert open_clip.get_model_config('ViT-B-16-quickgelu')['quick_gelu'] is True
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert OpenCLIPTextEncoder._check_pretrained('ViT-B-16-quickgelu', 'openai') == 'tag'
    with pytest.warns(UserWarning, match='QuickGELU mismatch'):
        OpenCLIPTextEncoder._check_pretrained('ViT-B-16', 'openai')
    # The preset on the tiny tower: the bare name's raw feature, L2-normalised.
    cfg = dict(SAMPTX_TEXT_ENCODER, model_name=TINY, pretrained=tiny_ckpt[0])
    enc = MODELS.build(cfg)
    enc.init_weights()
    raw = _raw(tiny_ckpt[1], NAMES)
    torch.testing.assert_close(enc.encode(NAMES), raw / raw.norm(dim=-1, keepdim=True),
                               atol=1e-6, rtol=0)
    assert SAMPTX_TEXT_ENCODER['model_name'] == 'ViT-B-16-quickgelu'  # not mutated


VARIANTS = {
    'default': dict(),
    'bare': dict(templates=('{}', )),
    'raw-ensemble': dict(templates=('{}', ), ensemble_normalize=False),
    'unnormalised': dict(templates=('{}', ), ensemble_normalize=False, normalize=False),
    'subtract': dict(subtract_redundant=True, redundant_templates=SMALL_REDUNDANT),
    'subtract-other-r': dict(subtract_redundant=True, redundant_templates=SMALL_REDUNDANT[:2]),
    'synonyms': dict(synonyms={'cat': ['cat', 'kitten']}),
    'other-synonyms': dict(synonyms={'cat': ['cat', 'kitty']}),
}


def test_cache_keys_differ_across_options(tiny_ckpt, tmp_path):
    cache = tmp_path / 'cache'
    keys, outs = set(), {}
    for label, options in VARIANTS.items():
        enc = _build(tiny_ckpt, cache_dir=str(cache), **options)
        keys.add(enc._disk_key(tuple(NAMES)))
        outs[label] = enc.encode(NAMES)
        # Fresh (no cache) computation agrees: no variant was served another's file.
        torch.testing.assert_close(_build(tiny_ckpt, **options).encode(NAMES), outs[label],
                                   atol=0, rtol=0)
    assert len(keys) == len(VARIANTS)
    assert len(list(cache.glob('*.pt'))) == len(VARIANTS)
    labels = list(VARIANTS)
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if (a, b) == ('bare', 'raw-ensemble'):
                # n(n(e)) and n(e): the same embedding by two option sets, still two keys.
                torch.testing.assert_close(outs[a], outs[b], atol=1e-6, rtol=0)
            else:
                assert not torch.allclose(outs[a], outs[b]), (a, b)
    key = json.loads(_build(tiny_ckpt, **VARIANTS['subtract'])._disk_key(('cat', )))
    assert key['subtract_redundant'] and key['redundant_templates'] == list(SMALL_REDUNDANT)


def test_redundant_templates_ignored_without_subtraction(tiny_ckpt):
    a = _build(tiny_ckpt, redundant_templates=SMALL_REDUNDANT)
    b = _build(tiny_ckpt)
    assert a._disk_key(('cat', )) == b._disk_key(('cat', ))


def test_unnormalised_rows_served_from_disk(tiny_ckpt, tmp_path, monkeypatch):
    cache = str(tmp_path / 'cache')
    expected = _build(tiny_ckpt, cache_dir=cache, **RAW).encode(NAMES)
    enc = _build(tiny_ckpt, cache_dir=cache, **RAW)
    calls = _count_text_calls(enc, monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        torch.testing.assert_close(enc.encode(NAMES), expected, atol=0, rtol=0)
    assert calls == []


def test_redundant_feature_computed_once_per_weights(tiny_ckpt, monkeypatch):
    enc = _build(tiny_ckpt, subtract_redundant=True, redundant_templates=SMALL_REDUNDANT)
    calls = _count_text_calls(enc, monkeypatch)
    enc.encode(['cat'])
    assert len(calls) == 2  # the class prompts, then r
    enc.encode(['dog'])
    assert len(calls) == 3  # r reused
    enc.load_state_dict(enc.state_dict())  # new weights: r is recomputed
    enc.encode(['dog'])
    assert len(calls) == 5


@pytest.mark.parametrize('option', ['normalize', 'ensemble_normalize', 'subtract_redundant'])
@pytest.mark.parametrize('value', ['yes', 1, None])
def test_bad_flag_names_value_and_choices(option, value):
    with pytest.raises(ValueError,
                       match=f'{option} must be True or False, got {value!r}'):
        OpenCLIPTextEncoder(TINY, **{option: value})


@pytest.mark.parametrize('synonyms, exc, match', [
    (['cat', 'kitten'], TypeError, "synonyms must be None or a dict.*\\['cat', 'kitten'\\]"),
    ({'cat': 'kitten'}, ValueError, "synonyms\\['cat'\\] = 'kitten' must be a non-empty list"),
    ({'cat': []}, ValueError, "synonyms\\['cat'\\] = \\[\\]"),
    ({'cat': ['cat', '']}, ValueError, "synonyms\\['cat'\\] contains ''"),
    ({'': ['cat']}, ValueError, "synonyms key ''"),
])
def test_bad_synonyms(synonyms, exc, match):
    with pytest.raises(exc, match=match):
        OpenCLIPTextEncoder(TINY, synonyms=synonyms)


@pytest.mark.parametrize('templates, exc, match', [
    ((), ValueError, 'redundant_templates is empty'),
    (('a photo.', ), ValueError, "redundant_templates .*'a photo.'"),
    ('a photo of a {}.', TypeError, 'redundant_templates must be a sequence'),
])
def test_bad_redundant_templates(templates, exc, match):
    with pytest.raises(exc, match=match):
        OpenCLIPTextEncoder(TINY, subtract_redundant=True, redundant_templates=templates)
