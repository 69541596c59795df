"""The SU-SAM adapter family as the SAM-PTx authors built it (docs/methods/samptx-authors.md §3, §4).

The reference block below is written from the document's equations in plain torch
(window partition, layer norms, MLP, both adapters); only the attention itself is
the block's own ``attn`` module (SAM's attention, tested against segment_anything
elsewhere). Our block, with the adapters in its two slots, must equal it.
"""
import pytest
import torch
import torch.nn.functional as F

from mmsamptx.models.adapters import (AttentionAdapter, ParallelAdapter, ParallelTextAdapter,
                                      attach_adapters)
from mmsamptx.models.backbones import SAMImageEncoder
from mmsamptx.models.utils.sam_block import SAMBlock

DIM, HEADS, TEXT = 64, 4, 32
R = DIM // 4  # the authors' r = int(0.25 * D)


# ----------------------------------------------------------------------------- reference
def partition(x, ws):
    """(B, H, W, C) -> (B * nW, ws, ws, C), zero-padded to multiples of ws."""
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.reshape(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws, ws, c), (hp, wp)


def unpartition(x, ws, padded, hw, b):
    """(B * nW, ws, ws, C) -> (B, H, W, C)."""
    hp, wp = padded
    x = x.reshape(b, hp // ws, wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, hp, wp, -1)[:, :hw[0], :hw[1]]


def bottleneck(w, name, h):
    """fc2(GELU(fc1(h))) with the weights ``w[name + '1.*']``, ``w[name + '2.*']``."""
    z = F.linear(h, w[f'{name}1.weight'], w[f'{name}1.bias'])
    return F.linear(F.gelu(z), w[f'{name}2.weight'], w[f'{name}2.bias'])


def authors_block(blk, w, x, t):
    """§3.4 (t given: Parallel-Text) or §3.5 (t None: spatial Parallel), with SAM weights of blk."""
    ln = lambda m, v: F.layer_norm(v, (v.shape[-1],), m.weight, m.bias, 1e-6)  # noqa: E731
    h = ln(blk.norm1, x)
    if blk.window_size > 0:
        h, padded = partition(h, blk.window_size)
    a = blk.attn(h)
    a = a + 0.5 * (a + bottleneck(w, 'fc_s', a))      # Space adapter with its inner skip
    if blk.window_size > 0:
        a = unpartition(a, blk.window_size, padded, x.shape[1:3], x.shape[0])
    x1 = x + a
    xn = ln(blk.norm2, x1)
    mlp = F.linear(F.gelu(F.linear(xn, blk.mlp.lin1.weight, blk.mlp.lin1.bias)),
                   blk.mlp.lin2.weight, blk.mlp.lin2.bias)
    if t is not None:
        tp = F.gelu(F.linear(t, w['W_t'], w['b_t']))[:, None, None, :]  # (B, 1, 1, D)
        xn = xn + tp
    return x1 + mlp + 0.5 * bottleneck(w, 'fc_m', xn)


def authors_weights(text: bool, gen: torch.Generator) -> dict:
    """Random weights in the shapes of §3.1-3.4 (D = DIM, r = D / 4, text width TEXT)."""
    shapes = {'fc_s1.weight': (R, DIM), 'fc_s1.bias': (R,), 'fc_s2.weight': (DIM, R),
              'fc_s2.bias': (DIM,), 'fc_m1.weight': (R, DIM), 'fc_m1.bias': (R,),
              'fc_m2.weight': (DIM, R), 'fc_m2.bias': (DIM,)}
    if text:
        shapes.update({'W_t': (DIM, TEXT), 'b_t': (DIM,)})
    return {k: 0.2 * torch.randn(s, generator=gen) for k, s in shapes.items()}


#: the authors' weights -> our block's state-dict keys
OURS = {'fc_s1.weight': 'attn_adapter.down.weight', 'fc_s1.bias': 'attn_adapter.down.bias',
        'fc_s2.weight': 'attn_adapter.up.weight', 'fc_s2.bias': 'attn_adapter.up.bias',
        'fc_m1.weight': 'adapter.down.weight', 'fc_m1.bias': 'adapter.down.bias',
        'fc_m2.weight': 'adapter.up.weight', 'fc_m2.bias': 'adapter.up.bias',
        'W_t': 'adapter.text_proj.weight', 'b_t': 'adapter.text_proj.bias'}


def sam_block(window_size, grid, gen):
    """A SAMBlock with random SAM weights, rel-pos tables included (they start at zero)."""
    blk = SAMBlock(DIM, HEADS, use_rel_pos=True, window_size=window_size, input_size=grid)
    with torch.no_grad():
        for name, p in blk.named_parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen) + (name.startswith('norm') and
                                                                  name.endswith('weight')))
    return blk.eval()


# --------------------------------------------------------------------------------- tests
@pytest.mark.parametrize('window_size,grid', [(4, (8, 8)), (4, (10, 7)), (0, (8, 8))],
                         ids=['windowed', 'windowed-padded', 'global'])
@pytest.mark.parametrize('text', [True, False], ids=['parallel-text', 'spatial-parallel'])
def test_block_equals_the_authors_block(window_size, grid, text):
    gen = torch.Generator().manual_seed(0)
    blk = sam_block(window_size, grid, gen)
    blk.attn_adapter = AttentionAdapter(DIM)  # the authors' defaults: r = D/4, 0.5, inner skip
    blk.adapter = ParallelTextAdapter(DIM, text_dims=TEXT) if text else ParallelAdapter(DIM)
    w = authors_weights(text, gen)
    missing = set(blk.load_state_dict({OURS[k]: v for k, v in w.items()}, strict=False).missing_keys)
    assert not any(k.startswith(('adapter.', 'attn_adapter.')) for k in missing)
    x = torch.randn(2, *grid, DIM, generator=gen)
    t = torch.randn(2, TEXT, generator=gen) if text else None
    with torch.no_grad():
        ours, ref = blk(x, t), authors_block(blk, w, x, t)
        assert (ours - ref).abs().max().item() <= 1e-5
        # ...and the adapters matter: without them the block is far from the reference.
        blk.adapter = blk.attn_adapter = None
        assert (blk(x, t) - ref).abs().max().item() > 1e-2


@pytest.mark.parametrize('window_size,grid', [(4, (10, 7)), (0, (8, 8))], ids=['windowed', 'global'])
@pytest.mark.parametrize('adapter,attn_adapter', [
    (dict(type='ParallelAdapter', zero_init=True), None),
    (dict(type='ParallelTextAdapter', text_dims=TEXT, zero_init=True), None),
    (dict(type='ParallelTextAdapter', text_dims=TEXT, bottleneck=8, zero_init=True,
          text_input='bottleneck'), None),
    (None, dict(type='AttentionAdapter', zero_init=True, inner_skip=False)),
    (dict(type='ParallelTextAdapter', text_dims=TEXT, zero_init=True),
     dict(type='AttentionAdapter', zero_init=True, inner_skip=False)),
], ids=['parallel', 'parallel-text', 'parallel-text-bottleneck', 'attention', 'both'])
def test_zero_initialised_adapters_are_sam(window_size, grid, adapter, attn_adapter):
    from mmseg.registry import MODELS
    gen = torch.Generator().manual_seed(1)
    blk = sam_block(window_size, grid, gen)
    x, t = torch.randn(2, *grid, DIM, generator=gen), torch.randn(2, TEXT, generator=gen)
    prompts = torch.randn(2, 3, DIM, generator=gen)
    with torch.no_grad():
        sam, (sam_x, sam_p) = blk(x), blk(x, None, prompts)
        blk.adapter = None if adapter is None else MODELS.build(dict(adapter, embed_dims=DIM))
        blk.attn_adapter = None if attn_adapter is None else MODELS.build(
            dict(attn_adapter, embed_dims=DIM))
        assert (blk(x, t) - sam).abs().max().item() <= 1e-5
        out_x, out_p = blk(x, t, prompts)
        assert (out_x - sam_x).abs().max().item() <= 1e-5
        assert (out_p - sam_p).abs().max().item() <= 1e-5


def test_inner_skip_scales_the_attention_output_by_one_and_a_half():
    ad = AttentionAdapter(DIM)
    with torch.no_grad():
        ad.up.weight.zero_()
        ad.up.bias.zero_()
    a = torch.randn(2, 5, 5, DIM)
    # the block computes a + attn_adapter(a): 1.5 a where A outputs zero (§3.2)
    assert torch.allclose(a + ad(a), 1.5 * a, atol=1e-6)
    gen = torch.Generator().manual_seed(2)
    blk = sam_block(4, (8, 8), gen)
    x = torch.randn(1, 8, 8, DIM, generator=gen)
    with torch.no_grad():
        plain = blk(x)
        # x1 = x + 1.5 a: check through the attention branch of the whole block
        a = blk.attn(partition(blk.norm1(x), 4)[0])
        a = unpartition(a, 4, (8, 8), (8, 8), 1)
        blk.attn_adapter = ad
        x1 = x + 1.5 * a
        assert (blk(x) - (x1 + blk.mlp(blk.norm2(x1)))).abs().max().item() <= 1e-5
        assert (blk(x) - plain).abs().max().item() > 1e-2


def test_gradients_reach_both_adapters():
    torch.manual_seed(0)
    enc = SAMImageEncoder('tiny', img_size=64,
                          adapter_cfg=dict(type='ParallelTextAdapter', text_dims=TEXT),
                          attn_adapter_cfg=dict(type='AttentionAdapter'))
    enc.train()
    enc(torch.randn(2, 3, 64, 64), torch.randn(2, TEXT))[0].square().sum().backward()
    for blk in enc.blocks:
        for name, p in list(blk.adapter.named_parameters()) + list(blk.attn_adapter.named_parameters()):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for n, p in enc.named_parameters() if enc.is_sam_key(n))


# ----------------------------------------------------------- closed-form counts at ViT-B (§4)
@pytest.fixture(scope='module')
def vit_b():
    """SAM ViT-B's image encoder, frozen and without adapters (built once: ~90 M parameters)."""
    return SAMImageEncoder(arch='vit_b')


def trainable_with(enc, adapter_cfg=None, attn_adapter_cfg=None) -> int:
    """Trainable parameters of ``enc`` with these adapters attached (removed again afterwards)."""
    try:
        if adapter_cfg is not None:
            attach_adapters(enc, adapter_cfg)
        if attn_adapter_cfg is not None:
            attach_adapters(enc, attn_adapter_cfg, slot='attn_adapter')
        assert all(enc.is_sam_key(n) != p.requires_grad for n, p in enc.named_parameters())
        return sum(p.numel() for p in enc.parameters() if p.requires_grad)
    finally:
        for blk in enc.blocks:
            blk.adapter = blk.attn_adapter = None


def test_unit_counts_at_vit_b():
    assert sum(p.numel() for p in AttentionAdapter(768).parameters()) == 295_872
    assert sum(p.numel() for p in ParallelAdapter(768).parameters()) == 295_872
    assert sum(p.numel() for p in ParallelTextAdapter(768).parameters()) == 689_856
    assert ParallelAdapter(768).bottleneck == 192


def test_trainable_counts_at_vit_b(vit_b):
    assert trainable_with(vit_b) == 0
    assert sum(p.numel() for p in vit_b.parameters()) == 89_670_912 - 787_456  # the neck is apart
    samptx = trainable_with(vit_b, dict(type='ParallelTextAdapter', text_dims=512),
                            dict(type='AttentionAdapter', inner_skip=True))
    assert samptx == 11_828_736
    spatial = trainable_with(vit_b, dict(type='ParallelAdapter'), dict(type='AttentionAdapter'))
    assert spatial == 7_100_928
    ours = trainable_with(vit_b, dict(type='ParallelTextAdapter', text_dims=512, bottleneck=64,
                                      zero_init=True, text_input='bottleneck'))
    assert ours == 1_583_616
