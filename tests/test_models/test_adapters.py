"""Adapters: zero-initialised they are exactly SAM; their parameter counts are the closed form."""
import pytest
import torch

from mmsamptx.models.adapters import ParallelAdapter, ParallelTextAdapter, attach_adapters
from mmsamptx.models.backbones import SAMImageEncoder


def test_zero_initialised_adapters_leave_sam_unchanged(tiny_sam_checkpoint):
    path, sam = tiny_sam_checkpoint
    from mmsamptx.models.necks import SAMNeck
    enc = SAMImageEncoder('tiny', img_size=64, checkpoint=path, adapter_cfg=dict(
        type='ParallelTextAdapter', text_dims=32, bottleneck=8))
    neck = SAMNeck(64, checkpoint=path)
    enc.init_weights()
    neck.init_weights()
    x, t = torch.randn(3, 3, 64, 64), torch.randn(3, 32)
    with torch.no_grad():
        assert (neck(enc(x, t))[0] - sam.image_encoder(x)).abs().max().item() <= 1e-5
        # ...and a trained (non-zero) adapter does change the output.
        enc.blocks[0].adapter.up.weight.normal_()
        assert (neck(enc(x, t))[0] - sam.image_encoder(x)).abs().max().item() > 1e-3


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
    assert sum(p.numel() for p in ParallelAdapter(c, r).parameters()) == 2 * c * r + r + c
    assert sum(p.numel() for p in ParallelTextAdapter(c, d, r).parameters()) == \
        2 * c * r + r + c + d * r + r


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
