"""Adapters: zero-initialised they are exactly SAM; their parameter counts are the closed form.

The block equations of the authors' forms are checked in test_samptx_fidelity.py.
"""
import pytest
import torch

from mmsamptx.models.adapters import (AttentionAdapter, ParallelAdapter, ParallelTextAdapter,
                                      attach_adapters)
from mmsamptx.models.backbones import SAMImageEncoder


@pytest.mark.parametrize('text_input', ['bottleneck', 'tokens'])
def test_zero_initialised_adapters_leave_sam_unchanged(tiny_sam_checkpoint, text_input):
    path, sam = tiny_sam_checkpoint
    from mmsamptx.models.necks import SAMNeck
    enc = SAMImageEncoder('tiny', img_size=64, checkpoint=path, adapter_cfg=dict(
        type='ParallelTextAdapter', text_dims=32, bottleneck=8, zero_init=True, text_input=text_input),
        attn_adapter_cfg=dict(type='AttentionAdapter', zero_init=True, inner_skip=False))
    neck = SAMNeck(64, checkpoint=path)
    enc.init_weights()
    neck.init_weights()
    x, t = torch.randn(3, 3, 64, 64), torch.randn(3, 32)
    with torch.no_grad():
        assert (neck(enc(x, t))[0] - sam.image_encoder(x)).abs().max().item() <= 1e-5
        # ...and a trained (non-zero) adapter does change the output.
        enc.blocks[0].adapter.up.weight.normal_()
        assert (neck(enc(x, t))[0] - sam.image_encoder(x)).abs().max().item() > 1e-3
        enc.blocks[0].adapter.up.weight.zero_()
        enc.blocks[1].attn_adapter.up.weight.normal_()
        assert (neck(enc(x, t))[0] - sam.image_encoder(x)).abs().max().item() > 1e-3


def test_default_adapters_are_the_authors_and_change_sam(tiny_sam_checkpoint):
    """Default init (no zero-init, SU-SAM's inner skip): the untrained adapted encoder is not SAM."""
    path, sam = tiny_sam_checkpoint
    from mmsamptx.models.necks import SAMNeck
    for cfg in (dict(adapter_cfg=dict(type='ParallelAdapter')),
                dict(attn_adapter_cfg=dict(type='AttentionAdapter'))):
        enc = SAMImageEncoder('tiny', img_size=64, checkpoint=path, **cfg)
        neck = SAMNeck(64, checkpoint=path)
        enc.init_weights()
        neck.init_weights()
        x = torch.randn(1, 3, 64, 64)
        with torch.no_grad():
            assert (neck(enc(x))[0] - sam.image_encoder(x)).abs().max().item() > 1e-3


@pytest.mark.parametrize('blocks,expected', [(None, [0, 1, 2, 3]), ([0, -1], [0, 3]), ([2], [2])])
def test_attach_to_chosen_blocks(blocks, expected):
    enc = SAMImageEncoder('tiny', img_size=64, adapter_cfg=dict(type='ParallelAdapter', bottleneck=4,
                                                                 blocks=blocks))
    assert [i for i, b in enumerate(enc.blocks) if b.adapter is not None] == expected
    trainable = sum(p.numel() for p in enc.parameters() if p.requires_grad)
    assert trainable == len(expected) * (2 * 64 * 4 + 4 + 64)


def test_attach_rejects_bad_blocks_and_double_attach():
    enc = SAMImageEncoder('tiny', img_size=64)
    with pytest.raises(ValueError, match=r'adapter blocks \[7\] out of range .* 4 blocks'):
        attach_adapters(enc, dict(type='ParallelAdapter', blocks=[0, 7]))
    attach_adapters(enc, dict(type='ParallelAdapter', blocks=[1]))
    with pytest.raises(ValueError, match='block 1 already has an adapter'):
        attach_adapters(enc, dict(type='ParallelAdapter', blocks=[1]))


def test_parameter_counts_closed_form():
    c, r, d = 768, 64, 512
    unit = 2 * c * r + r + c
    assert sum(p.numel() for p in ParallelAdapter(c, r).parameters()) == unit
    assert sum(p.numel() for p in AttentionAdapter(c, r).parameters()) == unit
    assert sum(p.numel() for p in ParallelTextAdapter(
        c, d, r, text_input='bottleneck').parameters()) == unit + d * r + r
    assert sum(p.numel() for p in ParallelTextAdapter(c, d, r).parameters()) == unit + d * c + c
    # bottleneck=None takes int(ratio * C)
    assert ParallelAdapter(c).bottleneck == 192 and ParallelAdapter(c, ratio=0.125).bottleneck == 96


def test_defaults_and_old_design_options():
    ad = ParallelTextAdapter(64)
    assert (ad.bottleneck, ad.scale, ad.text_input, ad.text_proj.out_features) == (16, 0.5, 'tokens', 64)
    assert ad.up.weight.abs().sum() > 0                          # PyTorch's default init
    old = ParallelTextAdapter(64, bottleneck=8, zero_init=True, text_input='bottleneck')
    assert old.text_proj.out_features == 8 and not old.up.weight.any() and not old.up.bias.any()
    att = AttentionAdapter(64)
    assert att.inner_skip and att.scale == 0.5 and not att.conditioned
    with pytest.raises(ValueError, match=r"text_input must be one of \('tokens', 'bottleneck'\), "
                                         r"got 'grid'"):
        ParallelTextAdapter(64, text_input='grid')
    with pytest.raises(ValueError, match='bottleneck must be positive, got 0'):
        ParallelAdapter(64, bottleneck=0)
    with pytest.raises(ValueError, match='ratio must be positive, got -0.5'):
        AttentionAdapter(64, ratio=-0.5)


def test_old_design_is_the_earlier_formula():
    """text_input='bottleneck': scale * up(GELU(down(h) + text_proj(t))), text_proj D -> r."""
    torch.manual_seed(0)
    ad = ParallelTextAdapter(16, text_dims=8, bottleneck=4, text_input='bottleneck')
    h, t = torch.randn(2, 3, 3, 16), torch.randn(2, 8)
    z = ad.down(h) + ad.text_proj(t)[:, None, None, :]
    assert torch.allclose(ad(h, t), 0.5 * ad.up(torch.nn.functional.gelu(z)), atol=1e-6)


def test_attention_slot_attach_and_encoder_properties():
    enc = SAMImageEncoder('tiny', img_size=64, attn_adapter_cfg=dict(type='AttentionAdapter',
                                                                      blocks=[1, -1]))
    assert [i for i, b in enumerate(enc.blocks) if b.attn_adapter is not None] == [1, 3]
    assert all(b.adapter is None for b in enc.blocks)
    assert enc.is_adapted and not enc.is_conditioned and enc.first_conditioned_block is None
    assert not enc.is_sam_key('blocks.1.attn_adapter.down.weight')
    assert enc.is_sam_key('blocks.1.attn.qkv.weight')
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {f'blocks.{i}.attn_adapter.{m}.{k}' for i in (1, 3) for m in ('down', 'up')
                         for k in ('weight', 'bias')}
    # a conditioned adapter in either slot makes its block the first conditioned one
    attach_adapters(enc, dict(type='ParallelTextAdapter', text_dims=8, blocks=[2]))
    assert enc.is_conditioned and enc.first_conditioned_block == 2
    attach_adapters(enc, dict(type='ParallelTextAdapter', text_dims=8, blocks=[0]), slot='attn_adapter')
    assert enc.first_conditioned_block == 0
    x = torch.randn(2, 3, 64, 64)
    assert enc(x, torch.randn(2, 8))[0].shape == (2, 64, 4, 4)


def test_attach_rejects_a_bad_slot_and_double_attach_per_slot():
    enc = SAMImageEncoder('tiny', img_size=64)
    with pytest.raises(ValueError,
                       match=r"unknown adapter slot 'mlp'; valid: \('adapter', 'attn_adapter', 'attn.qkv'\)"):
        attach_adapters(enc, dict(type='ParallelAdapter'), slot='mlp')
    attach_adapters(enc, dict(type='ParallelAdapter', blocks=[1]))
    attach_adapters(enc, dict(type='AttentionAdapter', blocks=[1]), slot='attn_adapter')  # both slots
    with pytest.raises(ValueError, match="block 1 already has an adapter in slot 'attn_adapter'"):
        attach_adapters(enc, dict(type='AttentionAdapter', blocks=[1]), slot='attn_adapter')


def test_both_slots_with_prompt_tokens_and_checkpointing():
    """The attention-side adapter also acts on visual prompt tokens, and survives with_cp."""
    torch.manual_seed(0)
    kw = dict(adapter_cfg=dict(type='ParallelTextAdapter', text_dims=8),
              attn_adapter_cfg=dict(type='AttentionAdapter'),
              prompt_cfg=dict(type='EncoderPromptTokens', num_tokens=2, depth='deep'))
    a = SAMImageEncoder('tiny', img_size=64, with_cp=True, **kw)
    b = SAMImageEncoder('tiny', img_size=64, **kw)
    b.load_state_dict(a.state_dict())
    a.train(), b.train()
    x, t = torch.randn(2, 3, 64, 64), torch.randn(2, 8)
    oa, ob = a(x, t)[0], b(x, t)[0]
    assert torch.allclose(oa, ob, atol=1e-6)
    oa.square().sum().backward()
    ob.square().sum().backward()
    ga, gb = a.blocks[0].attn_adapter.down.weight.grad, b.blocks[0].attn_adapter.down.weight.grad
    assert ga is not None and ga.abs().sum() > 0
    assert torch.allclose(ga, gb, atol=1e-6, rtol=1e-5)


def test_text_adapter_needs_matching_text():
    enc = SAMImageEncoder('tiny', img_size=64, adapter_cfg=dict(type='ParallelTextAdapter',
                                                                 text_dims=32, bottleneck=8))
    x = torch.randn(2, 3, 64, 64)
    with pytest.raises(ValueError, match='needs text embeddings'):
        enc(x)
    with pytest.raises(ValueError, match=r'text_embeds must be \(2, 32\) for this batch, got \(2, 16\)'):
        enc(x, torch.randn(2, 16))


def test_text_changes_features_per_sample():
    torch.manual_seed(0)
    enc = SAMImageEncoder('tiny', img_size=64, adapter_cfg=dict(type='ParallelTextAdapter',
                                                                 text_dims=8, bottleneck=4))
    for b in enc.blocks:
        torch.nn.init.normal_(b.adapter.up.weight, std=0.1)
    x = torch.randn(1, 3, 64, 64).expand(2, -1, -1, -1)
    t = torch.randn(2, 8)
    with torch.no_grad():
        out = enc(x, t)[0]
        assert (out[0] - out[1]).abs().max() > 1e-3          # two classes, two feature maps
        same = enc(x, t[:1].expand(2, -1))[0]
        assert (same[0] - same[1]).abs().max() <= 1e-6      # same class, same features


@pytest.mark.parametrize('with_cp', [True, [0, -1]])
def test_activation_checkpointing_keeps_adapter_gradients(with_cp):
    torch.manual_seed(0)
    cfg = dict(type='ParallelTextAdapter', text_dims=8, bottleneck=4)
    a = SAMImageEncoder('tiny', img_size=64, adapter_cfg=cfg, with_cp=with_cp)
    b = SAMImageEncoder('tiny', img_size=64, adapter_cfg=cfg, with_cp=False)
    for blk in a.blocks:
        torch.nn.init.normal_(blk.adapter.up.weight, std=0.1)
    b.load_state_dict(a.state_dict())
    a.train(), b.train()
    x, t = torch.randn(2, 3, 64, 64), torch.randn(2, 8)
    a(x, t)[0].square().sum().backward()
    b(x, t)[0].square().sum().backward()
    ga, gb = a.blocks[0].adapter.down.weight.grad, b.blocks[0].adapter.down.weight.grad
    assert ga is not None and ga.abs().sum() > 0
    assert torch.allclose(ga, gb, atol=1e-6, rtol=1e-5)


def test_checkpointed_blocks_are_the_listed_ones_and_bad_lists_are_named():
    assert SAMImageEncoder('tiny', img_size=64, with_cp=[0, -1]).cp_blocks == {0, 3}
    assert SAMImageEncoder('tiny', img_size=64, with_cp=True).cp_blocks == {0, 1, 2, 3}
    assert SAMImageEncoder('tiny', img_size=64).cp_blocks == set()
    with pytest.raises(ValueError, match=r'block indices \[4\] out of range for 4 blocks'):
        SAMImageEncoder('tiny', img_size=64, with_cp=[0, 4])
    with pytest.raises(ValueError, match='with_cp must be True, False or a list'):
        SAMImageEncoder('tiny', img_size=64, with_cp='yes')
