"""Adapter-only checkpoints (tools/export_adapters.py): what they keep, that they load to the full
checkpoint's outputs, and that a wrong base, a wrong config or a foreign file is refused by name."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmsamptx.apis.adapter_checkpoint import (base_weights_digest, build_bare_model,
                                              is_adapter_checkpoint, load_adapter_checkpoint,
                                              read_adapter_checkpoint, trained_keys)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/demo/samptx_demo.py')
DECODER_ONLY = osp.join(REPO, 'configs/demo/decoder-only_demo.py')


def load_tool():
    spec = importlib.util.spec_from_file_location('mmsamptx_tool_export_adapters',
                                                  osp.join(REPO, 'tools/export_adapters.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def base_model(config=CONFIG, seed=0):
    """The config's model with its base weights from init_weights() (tiny: seeded random)."""
    torch.manual_seed(seed)  # the tiny arch has no weight files: building draws them
    model = build_bare_model(Config.fromfile(config))
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """A 'trained' full checkpoint (base + perturbed trained tensors, mmengine's layout) and its
    adapter-only export through the tool: (full path, adapter path, trained model, tool output)."""
    tmp = tmp_path_factory.mktemp('adapters')
    model = base_model()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    full = str(tmp / 'iter_300.pth')
    torch.save(dict(meta=dict(cfg=Config.fromfile(CONFIG).pretty_text, iter=300),
                    state_dict=model.state_dict(),
                    optimizer=dict(state={}, param_groups=[])), full)
    out = str(tmp / 'samptx_demo.adapters.safetensors')
    assert load_tool().main([full, '--out', out]) == 0
    return full, out, model


def outputs(model):
    """Mask logits and IoUs of every class, prompted by name and 2 points, on a fixed input."""
    g = torch.Generator().manual_seed(2)
    inputs = torch.randn(1, 3, 128, 128, generator=g)
    text = model.class_embeddings()
    index = torch.zeros(len(text), dtype=torch.long)
    points = torch.rand(len(text), 2, 2, generator=g) * 127
    with torch.no_grad():
        emb = model.encode_samples(inputs, index, text)
        return model.decode_head(emb, points, None, None, text)


def test_keeps_only_trained_tensors_and_metadata(exported, capsys):
    full, out, model = exported
    tensors, meta = read_adapter_checkpoint(out)
    # derived from requires_grad: the adapters of every block and the mask decoder, nothing else
    assert sorted(tensors) == trained_keys(model)
    assert {k.split('.')[0] for k in tensors} == {'backbone', 'decode_head'}
    assert all('adapter' in k for k in tensors if k.startswith('backbone.'))
    assert not any(k.startswith(('neck.', 'text_encoder.', 'decode_head.prompt_encoder.'))
                   for k in tensors)
    assert sum(t.numel() for t in tensors.values()) == \
        sum(p.numel() for p in model.parameters() if p.requires_grad) == 2_516_068
    for k, t in tensors.items():
        assert torch.equal(t, model.state_dict()[k])
    assert meta['format'] == 'mmsamptx-adapters' and meta['source'] == 'iter_300.pth'
    assert meta['base_digest'] == base_weights_digest(model)
    assert Config.fromstring(meta['config'], '.py').model.backbone.adapter_cfg.type == \
        'ParallelTextAdapter'
    assert is_adapter_checkpoint(out) and not is_adapter_checkpoint(full)
    assert osp.getsize(out) < 0.5 * osp.getsize(full)


def test_loads_to_the_full_checkpoints_outputs(exported):
    full, out, _ = exported
    from_full = base_model()
    from_full.load_state_dict(torch.load(full, weights_only=True)['state_dict'])
    from_adapters = base_model()
    before = outputs(from_adapters)
    load_adapter_checkpoint(from_adapters, out)
    expected, got = outputs(from_full), outputs(from_adapters)
    assert not torch.equal(before[0], got[0])  # the trained tensors did change the model
    for e, o in zip(expected, got):
        assert torch.equal(e, o)


def test_wrong_base_weights_refused_naming_both_digests(exported):
    _, out, _ = exported
    other = base_model(seed=1)  # other base weights
    expected = read_adapter_checkpoint(out)[1]['base_digest']
    found = base_weights_digest(other)
    with pytest.raises(ValueError) as e:
        load_adapter_checkpoint(other, out)
    msg = str(e.value)
    assert '\n' not in msg and out in msg and expected in msg and found in msg and expected != found


def test_other_configs_model_refused_naming_the_key(exported):
    _, out, _ = exported
    decoder_only = build_bare_model(Config.fromfile(DECODER_ONLY))
    with pytest.raises(ValueError, match=r"tensor\(s\) this model does not train, first "
                                         r"'backbone\.blocks\.0\.adapter\.") as e:
        load_adapter_checkpoint(decoder_only, out)
    assert '\n' not in str(e.value) and 'samptx_demo' in str(e.value)


def test_tool_errors_are_one_line(exported, tmp_path, capsys):
    full, out, _ = exported
    tool = load_tool()
    not_ckpt = tmp_path / 'notes.pth'
    not_ckpt.write_text('not a checkpoint')
    torn = tmp_path / 'torn.pth'
    torn.write_bytes(open(full, 'rb').read()[:5000])
    bare = tmp_path / 'bare.pth'
    torch.save(torch.load(full, weights_only=True)['state_dict'], bare)
    cases = [([str(not_ckpt)], 'notes.pth cannot be read'),
             ([str(torn)], 'torn.pth cannot be read'),
             ([str(tmp_path / 'missing.pth')], 'checkpoint file not found'),
             ([out], 'already an adapter-only checkpoint'),
             ([str(bare)], 'holds no config'),
             ([full, '--config', DECODER_ONLY],
              "key(s) the model of decoder-only_demo.py lacks, first 'backbone.blocks.0.adapter.")]
    for argv, needle in cases:
        capsys.readouterr()
        assert tool.main(argv + ['--out', str(tmp_path / 'x.safetensors')]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and needle in err, err
    assert not osp.exists(tmp_path / 'x.safetensors')
    # a bare state dict exports with the config given
    assert tool.main([str(bare), '--out', str(tmp_path / 'x.safetensors'), '--config', CONFIG]) == 0
    assert read_adapter_checkpoint(str(tmp_path / 'x.safetensors'))[1]['base_digest'] == \
        read_adapter_checkpoint(out)[1]['base_digest']
    with pytest.raises(ValueError, match='is not an mmsamptx adapter-only checkpoint'):
        load_adapter_checkpoint(base_model(), full)
