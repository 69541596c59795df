"""CLIP-Guided SAM's semantic adapter: the block equations (docs/methods/clip-guided-sam.md §3.4),
the parameter counts (§4), the conditioning object and the mixed-type placement."""
import pytest
import torch
import torch.nn.functional as F

from mmsamptx.models.adapters import (AttentionAdapter, CLIPCondition, ParallelAdapter,
                                      ParallelTextAdapter, SemanticAdapter, attach_adapters)
from mmsamptx.models.backbones import SAMImageEncoder
from mmsamptx.models.utils.sam_block import SAMBlock
from mmsamptx.models.utils.window import window_partition, window_unpartition

DIM, HEADS, CLIP, PATCHES = 64, 2, 32, 16

#: (use_text, use_vision, use_similarity) of the paper's Table 6 rows tested here
MODALITIES = {'text only': (True, False, False), 'vision only': (False, True, False),
              'similarity only': (False, False, True), 'all': (True, True, True),
              'text + vision': (True, True, False)}


def clip_condition(batch: int, gen: torch.Generator, patches: int = PATCHES, grid=None) -> CLIPCondition:
    return CLIPCondition(text=torch.randn(batch, CLIP, generator=gen),
                         vision=torch.randn(batch, 1 + patches, CLIP, generator=gen),
                         similarity=torch.randn(batch, 1 + patches, 1, generator=gen), grid=grid)


def reference_block(blk: SAMBlock, x: torch.Tensor, cond: CLIPCondition, switches, clip_grid
                    ) -> torch.Tensor:
    """§3.4 in plain torch, from the block's weights:

    a  = Attn(LN1(x)) (windowed or global);  a = a + 0.5 (a + fc2(GELU(fc1(a))))
    x1 = x + a;  xn = LN2(x1)
    x2 = x1 + MLP(xn) + 0.5 fc2(GELU(fc1(xn + U_l + T)))
    """
    use_text, use_vision, use_sim = switches
    b, h, w, c = x.shape
    xn = F.layer_norm(x, (c,), blk.norm1.weight, blk.norm1.bias, 1e-6)
    if blk.window_size > 0:
        win, pad_hw = window_partition(xn, blk.window_size)
        a = window_unpartition(blk.attn(win), blk.window_size, pad_hw, (h, w))
    else:
        a = blk.attn(xn)
    reg = blk.attn_adapter
    a = a + 0.5 * (a + F.linear(F.gelu(F.linear(a, reg.down.weight, reg.down.bias)),
                                reg.up.weight, reg.up.bias))
    x1 = x + a
    xn = F.layer_norm(x1, (c,), blk.norm2.weight, blk.norm2.bias, 1e-6)
    mlp = F.linear(F.gelu(F.linear(xn, blk.mlp.lin1.weight, blk.mlp.lin1.bias)),
                   blk.mlp.lin2.weight, blk.mlp.lin2.bias)
    sem = blk.adapter
    f = xn
    if use_vision or use_sim:
        u = torch.zeros_like(cond.vision)
        if use_vision:
            u = u + cond.vision
        if use_sim:
            u = u + cond.similarity  # broadcast over the Cc channels
        u = F.linear(u, sem.vision_proj.weight, sem.vision_proj.bias)[:, 1:]   # drop CLS
        gh, gw = clip_grid
        u = u.reshape(b, gh, gw, c).permute(0, 3, 1, 2)
        u = F.interpolate(u, size=(h, w), mode='bilinear', align_corners=False).permute(0, 2, 3, 1)
        f = f + u
    if use_text:
        f = f + F.gelu(F.linear(cond.text, sem.text_proj.weight, sem.text_proj.bias))[:, None, None, :]
    out = F.linear(F.gelu(F.linear(f, sem.down.weight, sem.down.bias)), sem.up.weight, sem.up.bias)
    return x1 + mlp + 0.5 * out


@pytest.mark.parametrize('modality', list(MODALITIES))
@pytest.mark.parametrize('window_size,grid,clip_grid', [(4, (8, 8), None), (4, (10, 7), None),
                                                        (0, (10, 7), None), (0, (8, 8), (2, 8))])
def test_block_is_the_papers_equations(modality, window_size, grid, clip_grid):
    switches = MODALITIES[modality]
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    blk = SAMBlock(DIM, HEADS, window_size=window_size, input_size=grid, fused_attn=False)
    blk.attn_adapter = AttentionAdapter(DIM)
    blk.adapter = SemanticAdapter(DIM, text_dims=CLIP, vision_dims=CLIP, use_text=switches[0],
                                  use_vision=switches[1], use_similarity=switches[2])
    x = torch.randn(2, *grid, DIM, generator=gen)
    cond = clip_condition(2, gen, grid=clip_grid)
    with torch.no_grad():
        got = blk(x, cond)
        want = reference_block(blk, x, cond, switches, cond.patch_grid())
        assert (got - want).abs().max().item() <= 1e-5
        # ...and every switched-on modality matters
        if switches[0]:
            other = CLIPCondition(cond.text + 1, cond.vision, cond.similarity, clip_grid)
            assert (blk(x, other) - got).abs().max().item() > 1e-4
        if switches[1]:
            other = CLIPCondition(cond.text, cond.vision + 1, cond.similarity, clip_grid)
            assert (blk(x, other) - got).abs().max().item() > 1e-4
        if switches[2]:
            other = CLIPCondition(cond.text, cond.vision, cond.similarity + 1, clip_grid)
            assert (blk(x, other) - got).abs().max().item() > 1e-4


def test_switched_off_modalities_build_no_projection():
    a = SemanticAdapter(DIM, CLIP, CLIP, use_text=True, use_vision=False, use_similarity=False)
    assert a.vision_proj is None and a.text_proj is not None and a.conditioned
    a = SemanticAdapter(DIM, CLIP, CLIP, use_text=False, use_vision=False, use_similarity=True)
    assert a.text_proj is None and a.vision_proj is not None and a.conditioned
    # Table 6's "parallel only": the plain parallel adapter, reading nothing
    a = SemanticAdapter(DIM, CLIP, CLIP, use_text=False, use_vision=False, use_similarity=False)
    assert a.text_proj is None and a.vision_proj is None and not a.conditioned
    h = torch.randn(2, 4, 4, DIM)
    assert torch.equal(a(h, None), a.scale * a.up(a.act(a.down(h))))


def test_text_only_is_the_parallel_text_adapter_and_takes_a_bare_tensor():
    torch.manual_seed(0)
    sem = SemanticAdapter(DIM, CLIP, use_vision=False, use_similarity=False)
    ptx = ParallelTextAdapter(DIM, CLIP, text_input='tokens')
    ptx.load_state_dict(sem.state_dict())
    h, t = torch.randn(2, 5, 3, DIM), torch.randn(2, CLIP)
    with torch.no_grad():
        assert torch.equal(sem(h, t), ptx(h, t))
        assert torch.equal(sem(h, CLIPCondition(t)), ptx(h, t))


@pytest.mark.parametrize('text_input', ['tokens', 'bottleneck'])
def test_parallel_text_adapter_reads_a_tensor_or_a_condition_alike(text_input):
    torch.manual_seed(0)
    ad = ParallelTextAdapter(DIM, CLIP, text_input=text_input)
    gen = torch.Generator().manual_seed(1)
    h, cond = torch.randn(2, 6, 6, DIM, generator=gen), clip_condition(2, gen)
    with torch.no_grad():
        assert torch.equal(ad(h, cond.text), ad(h, cond))


def test_gradients_reach_text_and_vision_projections():
    torch.manual_seed(0)
    ad = SemanticAdapter(DIM, CLIP, CLIP)
    gen = torch.Generator().manual_seed(1)
    cond = clip_condition(2, gen)
    ad(torch.randn(2, 8, 8, DIM, generator=gen), cond).square().sum().backward()
    for name in ('text_proj.weight', 'text_proj.bias', 'vision_proj.weight', 'vision_proj.bias',
                 'down.weight', 'up.weight'):
        p = ad.get_parameter(name)
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_clip_width_mismatch_names_both_widths():
    gen = torch.Generator().manual_seed(0)
    h, cond = torch.randn(2, 4, 4, DIM, generator=gen), clip_condition(2, gen)  # CLIP width 32
    with pytest.raises(ValueError, match=r'text width 32 .* text_dims=48'):
        SemanticAdapter(DIM, text_dims=48, vision_dims=CLIP)(h, cond)
    with pytest.raises(ValueError, match=r'vision width is 32 .* vision_dims=48'):
        SemanticAdapter(DIM, text_dims=CLIP, vision_dims=48)(h, cond)
    with pytest.raises(ValueError, match=r'text width 32 .* text_dims=48'):
        ParallelTextAdapter(DIM, text_dims=48)(h, cond)


def test_missing_or_malformed_conditioning_is_a_clear_error():
    gen = torch.Generator().manual_seed(0)
    h, cond = torch.randn(2, 4, 4, DIM, generator=gen), clip_condition(2, gen)
    with pytest.raises(ValueError, match='needs a CLIPCondition'):
        SemanticAdapter(DIM, CLIP, CLIP)(h, cond.text)
    with pytest.raises(ValueError, match='use_vision=True but the CLIPCondition carries no vision'):
        SemanticAdapter(DIM, CLIP, CLIP)(h, CLIPCondition(cond.text, similarity=cond.similarity))
    with pytest.raises(ValueError, match='holds 3 samples, the tokens 2'):
        SemanticAdapter(DIM, CLIP, CLIP)(h, cond.index(torch.tensor([0, 1, 1])))
    with pytest.raises(ValueError, match=r'N = 15 patch tokens .* not a square grid; give grid'):
        clip_condition(2, gen, patches=15)
    with pytest.raises(ValueError, match=r'grid \(3, 4\) holds 12 patches, but the tokens hold N = 16'):
        clip_condition(2, gen, grid=(3, 4))
    with pytest.raises(ValueError, match=r'similarity must be \(M=2, 1\+N, 1\)'):
        CLIPCondition(cond.text, cond.vision, cond.vision)


def test_condition_selects_rows():
    gen = torch.Generator().manual_seed(0)
    cond = clip_condition(2, gen, grid=(2, 8))
    idx = torch.tensor([1, 1, 0])
    sel = cond.index(idx)
    assert sel.batch_size == 3 and sel.grid == (2, 8) and sel.patch_grid() == (2, 8)
    for name in ('text', 'vision', 'similarity'):
        assert torch.equal(getattr(sel, name), getattr(cond, name)[idx])
    assert CLIPCondition(cond.text).index(idx).vision is None
    assert sel.to(torch.float64).vision.dtype == torch.float64


# ------------------------------------------------------------------ placement in the encoder
def clip_guided_cfgs(depth: int, s: int, clip: int = 512) -> dict:
    """Semantic adapters in the last ``s`` blocks, the plain MLP-side adapter in the others, and the
    regular adapter beside attention in every block (§3.4)."""
    mlp_side = [dict(type='SemanticAdapter', text_dims=clip, vision_dims=clip,
                     blocks=list(range(depth - s, depth)))]
    if s < depth:
        mlp_side.insert(0, dict(type='ParallelAdapter', blocks=list(range(depth - s))))
    return dict(adapter_cfg=mlp_side, attn_adapter_cfg=dict(type='AttentionAdapter'))


@pytest.mark.parametrize('s', [1, 2, 4])
def test_list_of_configs_puts_each_type_in_its_blocks(s):
    enc = SAMImageEncoder('tiny', img_size=64, **clip_guided_cfgs(4, s, clip=CLIP))
    kinds = [type(b.adapter).__name__ for b in enc.blocks]
    assert kinds == ['ParallelAdapter'] * (4 - s) + ['SemanticAdapter'] * s
    assert all(type(b.attn_adapter) is AttentionAdapter for b in enc.blocks)
    assert enc.is_conditioned and enc.first_conditioned_block == 4 - s
    enc.train()
    gen = torch.Generator().manual_seed(0)
    out = enc(torch.randn(2, 3, 64, 64, generator=gen), clip_condition(2, gen))[0]
    assert out.shape == (2, DIM, 4, 4)
    out.square().sum().backward()
    sem = enc.blocks[-1].adapter
    assert sem.text_proj.weight.grad.abs().sum() > 0 and sem.vision_proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for n, p in enc.named_parameters() if enc.is_sam_key(n))


def test_list_of_configs_rejects_shared_blocks_and_attaches_nothing():
    enc = SAMImageEncoder('tiny', img_size=64)
    with pytest.raises(ValueError, match=r"block 2 is given two adapters .* 'ParallelAdapter' and "
                                         r"'SemanticAdapter'"):
        attach_adapters(enc, [dict(type='ParallelAdapter', blocks=[0, 1, 2]),
                              dict(type='SemanticAdapter', blocks=[-2, -1])])
    assert all(b.adapter is None for b in enc.blocks)
    with pytest.raises(ValueError, match='a dict or a non-empty list of dicts'):
        attach_adapters(enc, [])


@pytest.fixture(scope='module')
def vit_b():
    """SAM ViT-B's image encoder, frozen and without adapters (built once: ~90 M parameters)."""
    return SAMImageEncoder(arch='vit_b')


def adapter_count(enc, adapter_cfg, attn_adapter_cfg):
    """Trainable parameters with these adapters attached, the first conditioned block, and the
    MLP-side types per block; the adapters are removed again afterwards."""
    try:
        attach_adapters(enc, adapter_cfg)
        attach_adapters(enc, attn_adapter_cfg, slot='attn_adapter')
        assert all(enc.is_sam_key(n) != p.requires_grad for n, p in enc.named_parameters())
        return (sum(p.numel() for p in enc.parameters() if p.requires_grad),
                enc.first_conditioned_block, [type(b.adapter) for b in enc.blocks])
    finally:
        for blk in enc.blocks:
            blk.adapter = blk.attn_adapter = None


def test_unit_counts_at_vit_b():
    assert sum(p.numel() for p in SemanticAdapter(768).parameters()) == 1_083_840
    assert sum(p.numel() for p in SemanticAdapter(768, use_text=False).parameters()) == 689_856
    assert sum(p.numel() for p in SemanticAdapter(
        768, use_vision=False, use_similarity=False).parameters()) == 689_856
    assert sum(p.numel() for p in SemanticAdapter(
        768, use_vision=False).parameters()) == 1_083_840  # similarity alone still has W_v
    assert sum(p.numel() for p in SemanticAdapter(
        768, use_text=False, use_vision=False, use_similarity=False).parameters()) == 295_872


@pytest.mark.parametrize('s,expected', [(4, 10_252_800), (8, 13_404_672), (12, 16_556_544)])
def test_adapter_counts_at_vit_b(vit_b, s, expected):
    assert expected == 12 * 295_872 + (12 - s) * 295_872 + s * 1_083_840  # §4's closed form
    count, first, kinds = adapter_count(vit_b, **clip_guided_cfgs(12, s))
    assert count == expected
    assert first == 12 - s
    assert kinds == [ParallelAdapter] * (12 - s) + [SemanticAdapter] * s
