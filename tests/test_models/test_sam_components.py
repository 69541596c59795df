"""Our SAM components load official-format checkpoints exactly and compute SAM's maths."""
import pytest
import torch

from mmsamptx.models.backbones import SAMImageEncoder
from mmsamptx.models.heads import SAMMaskDecoder, SAMPromptEncoder
from mmsamptx.models.necks import SAMNeck
from mmsamptx.models.utils import format_parameter_report, load_sam_part, parameter_report

from sam_helpers import build_reference_sam, load_encoder_and_neck, randomise_zero_inits


@pytest.mark.parametrize('fused', [True, False])
def test_tiny_encoder_equals_segment_anything(tiny_sam_checkpoint, fused):
    path, sam = tiny_sam_checkpoint
    enc, neck = load_encoder_and_neck(path, fused_attn=fused)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        diff = (neck(enc(x))[0] - sam.image_encoder(x)).abs().max().item()
    assert diff <= 1e-5


def test_window_padding_matches_reference():
    """A 6x6 token grid with 4x4 windows takes SAM's zero-padding path."""
    torch.manual_seed(1)
    sam = randomise_zero_inits(build_reference_sam(96)).eval()
    sd = sam.state_dict()
    enc = SAMImageEncoder('tiny', img_size=96)
    neck = SAMNeck(64)
    load_sam_part(enc, 'mem', 'image_encoder.', exclude=('neck.',), state_dict=sd)
    load_sam_part(neck.layers, 'mem', 'image_encoder.neck.', state_dict=sd)
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (neck(enc(x))[0] - sam.image_encoder(x)).abs().max().item() <= 1e-5


def test_prompt_encoder_and_decoder_equal_segment_anything(tiny_sam_checkpoint):
    path, sam = tiny_sam_checkpoint
    sd = torch.load(path, weights_only=True)
    pe = SAMPromptEncoder(image_size=64)
    dec = SAMMaskDecoder()
    load_sam_part(pe, path, 'prompt_encoder.', state_dict=sd)
    load_sam_part(dec, path, 'mask_decoder.', state_dict=sd)
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(1, 256, 4, 4, generator=g)
    points = (torch.rand(3, 2, 2, generator=g) * 64, torch.tensor([[1, 0], [1, 1], [0, 1]]))
    boxes = torch.tensor([[4., 4., 40., 50.]] * 3)
    with torch.no_grad():
        for kw in (dict(points=points, boxes=None, masks=None),
                   dict(points=points, boxes=boxes, masks=None),
                   dict(points=None, boxes=boxes, masks=torch.randn(3, 1, 16, 16, generator=g))):
            s_ours, d_ours = pe(**kw)
            s_ref, d_ref = sam.prompt_encoder(**kw)
            assert (s_ours - s_ref).abs().max() <= 1e-6 and (d_ours - d_ref).abs().max() <= 1e-6
            for multi in (True, False):
                m1, i1 = dec(emb, pe.get_dense_pe(), s_ours, d_ours, multi)
                m2, i2 = sam.mask_decoder(emb, sam.prompt_encoder.get_dense_pe(), s_ref, d_ref, multi)
                assert m1.shape == m2.shape == (3, 3 if multi else 1, 16, 16)
                assert (m1 - m2).abs().max() <= 1e-5 and (i1 - i2).abs().max() <= 1e-5


def test_decoder_pairs_one_embedding_per_prompt_set(tiny_sam_checkpoint):
    """B embeddings with B prompt sets give, row by row, what SAM gives one image at a time."""
    path, sam = tiny_sam_checkpoint
    dec = SAMMaskDecoder()
    load_sam_part(dec, path, 'mask_decoder.')
    emb = torch.randn(2, 256, 4, 4)
    sparse, dense = sam.prompt_encoder((torch.rand(2, 1, 2) * 64, torch.ones(2, 1)), None, None)
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        masks, ious = dec(emb, pe, sparse, dense, False)
        for i in range(2):
            m, iou = sam.mask_decoder(emb[i:i + 1], pe, sparse[i:i + 1], dense[i:i + 1], False)
            assert (masks[i:i + 1] - m).abs().max() <= 1e-5 and (ious[i:i + 1] - iou).abs().max() <= 1e-5
    with pytest.raises(ValueError, match='3 image embeddings for 2 prompt sets'):
        dec(torch.randn(3, 256, 4, 4), pe, sparse, dense, False)


def test_vit_b_official_checkpoint_at_1024(tmp_path):
    """The real ViT-B architecture at SAM's input size, through the official key format."""
    from segment_anything import sam_model_registry
    torch.manual_seed(0)
    sam = randomise_zero_inits(sam_model_registry['vit_b']()).eval()
    path = str(tmp_path / 'sam_vit_b_01ec64.pth')
    torch.save(sam.state_dict(), path)
    enc = SAMImageEncoder('vit_b', init_cfg=dict(type='Pretrained', checkpoint=path))
    neck = SAMNeck(768, init_cfg=dict(type='Pretrained', checkpoint=path))
    enc.init_weights()
    neck.init_weights()
    x = torch.randn(1, 3, 1024, 1024)
    with torch.no_grad():
        ours = neck(enc(x))[0]
        ref = sam.image_encoder(x)
    assert ours.shape == (1, 256, 64, 64)
    assert (ours - ref).abs().max().item() <= 1e-5
    # The vit_b file into a vit_l encoder names the first mismatching key and both shapes.
    with pytest.raises(ValueError, match=r"image_encoder\.pos_embed.*\(1, 64, 64, 768\).*\(1, 64, 64, 1024\)"):
        SAMImageEncoder('vit_l', checkpoint=path).init_weights()


def test_tiny_checkpoint_into_other_depth_names_key(tiny_sam_checkpoint):
    path, _ = tiny_sam_checkpoint
    enc = SAMImageEncoder(dict(embed_dims=64, depth=2, num_heads=2, global_attn_indexes=(1,),
                               window_size=4), img_size=64, checkpoint=path)
    with pytest.raises(ValueError, match=r"'image_encoder\.blocks\.2\.[\w.]+' has no counterpart"):
        enc.init_weights()
    deeper = SAMImageEncoder(dict(embed_dims=64, depth=5, num_heads=2, global_attn_indexes=(1, 3),
                                  window_size=4), img_size=64, checkpoint=path)
    with pytest.raises(ValueError, match=r"lacks \d+ key\(s\).*'image_encoder\.blocks\.4\."):
        deeper.init_weights()


def test_missing_checkpoint_is_reported_at_init_not_build(tmp_path):
    missing = str(tmp_path / 'sam_vit_b_01ec64.pth')
    enc = SAMImageEncoder('tiny', img_size=64, checkpoint=missing)  # building reads nothing
    with pytest.raises(FileNotFoundError) as e:
        enc.init_weights()
    assert missing in str(e.value) and 'dl.fbaipublicfiles.com' in str(e.value)


def test_not_a_sam_checkpoint(tmp_path):
    path = tmp_path / 'other.pth'
    torch.save({'model.weight': torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"no keys under 'image_encoder\.'.*model\.weight"):
        SAMImageEncoder('tiny', img_size=64, checkpoint=str(path)).init_weights()


def test_unknown_arch_lists_valid():
    with pytest.raises(ValueError, match=r"Unknown SAM arch 'vit_x'.*'tiny', 'vit_b', 'vit_h', 'vit_l'"):
        SAMImageEncoder('vit_x')


@pytest.mark.parametrize('shape', [(1, 1, 64, 64), (1, 4, 64, 64), (3, 64, 64)])
def test_wrong_channels_rejected(shape):
    enc = SAMImageEncoder('tiny', img_size=64)
    with pytest.raises(ValueError, match=r'expects a \(B, 3, H, W\) batch, got shape ' + str(shape).replace('(', r'\(').replace(')', r'\)')):
        enc(torch.randn(*shape))


def test_frozen_by_default_and_parameter_report():
    enc = SAMImageEncoder('tiny', img_size=64)
    assert not any(p.requires_grad for p in enc.parameters())
    model = torch.nn.Module()
    model.backbone = SAMImageEncoder('tiny', img_size=64, adapter_cfg=dict(
        type='ParallelAdapter', bottleneck=8, blocks=[0, -1]))
    model.neck = SAMNeck(64, frozen=False)
    rep = parameter_report(model)
    adapter = 2 * 64 * 8 + 8 + 64
    neck = 64 * 256 + 2 * 256 + 256 * 256 * 9 + 2 * 256
    assert rep['backbone'][0] == 2 * adapter
    assert rep['neck'] == (neck, neck)
    assert rep['total'][0] == 2 * adapter + neck
    text = format_parameter_report(model)
    assert 'backbone' in text and f'{2 * adapter:,}' in text


@pytest.mark.parametrize('fused', [True, 'global'])
def test_fused_and_explicit_attention_agree_with_gradients(fused):
    torch.manual_seed(0)
    cfg = dict(type='ParallelTextAdapter', text_dims=16, bottleneck=8)
    a = SAMImageEncoder('tiny', img_size=64, fused_attn=fused, adapter_cfg=cfg)
    # 'global': SDPA in the global-attention blocks (1 and 3 of the tiny arch); in the windowed
    # ones only where no gradient flows through the attention
    assert [blk.attn.fused for blk in a.blocks] == ([True] * 4 if fused is True else
                                                    ['no_grad', True, 'no_grad', True])
    b = SAMImageEncoder('tiny', img_size=64, fused_attn=False, adapter_cfg=cfg)
    with torch.no_grad():
        for p in a.parameters():
            p.normal_(0, 0.05)
    b.load_state_dict(a.state_dict())
    x, t = torch.randn(2, 3, 64, 64), torch.randn(2, 16)
    ya, yb = a(x, t)[0], b(x, t)[0]
    assert (ya - yb).abs().max() <= 1e-5
    ya.square().sum().backward()
    yb.square().sum().backward()
    ga = a.blocks[1].adapter.text_proj.weight.grad
    gb = b.blocks[1].adapter.text_proj.weight.grad
    assert ga.abs().sum() > 0 and torch.allclose(ga, gb, atol=1e-5, rtol=1e-4)


def test_other_input_size_interpolates_position_embedding(tiny_sam_checkpoint):
    path, _ = tiny_sam_checkpoint
    enc, neck = load_encoder_and_neck(path)
    out = neck(enc(torch.randn(1, 3, 128, 96)))[0]
    assert out.shape == (1, 256, 8, 6)


@pytest.mark.parametrize('num_prompts', [0, 3])
def test_mask_free_sdpa_equals_explicit_bias_on_a_non_square_grid(num_prompts):
    """The relative-position bias folded into extra head dims is the explicit bias, exactly."""
    from mmsamptx.models.utils.rel_pos_attention import RelPosAttention
    torch.manual_seed(0)
    fused = RelPosAttention(32, num_heads=4, use_rel_pos=True, input_size=(5, 7), fused=True)
    explicit = RelPosAttention(32, num_heads=4, use_rel_pos=True, input_size=(5, 7), fused=False)
    with torch.no_grad():
        fused.rel_pos_h.normal_(0, 0.5)
        fused.rel_pos_w.normal_(0, 0.5)
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 5, 7, 32)
    prompts = torch.randn(2, num_prompts, 32) if num_prompts else None
    out_f, out_e = fused(x, prompts), explicit(x, prompts)
    if prompts is None:
        out_f, out_e = (out_f,), (out_e,)
    for a, b in zip(out_f, out_e):
        assert (a - b).abs().max() <= 1e-5
    sum(o.square().sum() for o in out_f).backward()
    sum(o.square().sum() for o in out_e).backward()
    for name in ('rel_pos_h', 'rel_pos_w', 'qkv.weight'):
        ga = dict(fused.named_parameters())[name].grad
        gb = dict(explicit.named_parameters())[name].grad
        assert ga.abs().sum() > 0 and torch.allclose(ga, gb, atol=1e-5, rtol=1e-4), name


def test_compiled_blocks_keep_keys_and_outputs():
    """compile_blocks wraps each block with torch.compile (here dynamo with the eager backend)."""
    torch.manual_seed(0)
    cfg = dict(type='ParallelTextAdapter', text_dims=16, bottleneck=8)
    plain = SAMImageEncoder('tiny', img_size=64, adapter_cfg=cfg)
    compiled = SAMImageEncoder('tiny', img_size=64, adapter_cfg=cfg,
                               compile_blocks=dict(backend='eager', dynamic=False))
    assert list(compiled.state_dict()) == list(plain.state_dict())
    compiled.load_state_dict(plain.state_dict())
    x, t = torch.randn(2, 3, 64, 64), torch.randn(2, 16)
    assert torch.allclose(compiled(x, t)[0], plain(x, t)[0], atol=1e-6)


def test_autocast_dtype_auto_follows_the_device_and_bad_values_are_named():
    from mmsamptx.models.utils.precision import bf16_is_native, resolve_autocast_dtype
    expected = torch.bfloat16 if bf16_is_native('cpu') else None
    assert resolve_autocast_dtype('auto', 'cpu') is expected
    assert resolve_autocast_dtype(None, 'cpu') is None
    assert resolve_autocast_dtype('bfloat16', 'cpu') is torch.bfloat16
    enc = SAMImageEncoder('tiny', img_size=64, autocast_dtype='auto')
    tokens = enc.embed(torch.randn(1, 3, 64, 64))
    assert tokens.dtype == (expected or torch.float32)  # the residual stream's dtype
    assert enc(torch.randn(1, 3, 64, 64))[0].dtype == torch.float32
    with pytest.raises(ValueError, match='autocast_dtype must be one of'):
        SAMImageEncoder('tiny', img_size=64, autocast_dtype='bf16')
    with pytest.raises(ValueError, match="fused_attn must be True, False or 'global'"):
        SAMImageEncoder('tiny', img_size=64, fused_attn='window')


def test_no_grad_attention_fuses_exactly_where_no_gradient_flows(monkeypatch):
    import mmsamptx.models.utils.rel_pos_attention as rpa
    calls, real = [], rpa.sdpa_with_rel_pos
    monkeypatch.setattr(rpa, 'sdpa_with_rel_pos', lambda *a, **k: calls.append(1) or real(*a, **k))
    torch.manual_seed(0)
    attn = rpa.RelPosAttention(32, num_heads=4, use_rel_pos=True, input_size=(4, 4), fused='no_grad')
    with torch.no_grad():
        attn.rel_pos_h.normal_(0, 0.5)
    x = torch.randn(1, 4, 4, 32)
    with torch.no_grad():
        fused_out = attn(x)
    assert len(calls) == 1                  # inference: SDPA
    explicit_out = attn(x)
    assert len(calls) == 1                  # trainable rel-pos tables: explicit
    assert (fused_out - explicit_out).abs().max() <= 1e-5
    for p in attn.parameters():
        p.requires_grad_(False)
    attn(x)
    assert len(calls) == 2                  # frozen block, input without grad: SDPA
    attn(x.clone().requires_grad_())
    assert len(calls) == 2                  # a gradient flows to the input: explicit
    with pytest.raises(ValueError, match="fused must be True, False or 'no_grad'"):
        rpa.RelPosAttention(32, num_heads=4, fused='yes')


def test_patch_embedding_runs_in_float32_even_under_an_outer_autocast():
    """A bf16 patch-embedding convolution took a 771 MiB oneDNN buffer on the CPU (ViT-B, 512²)."""
    enc = SAMImageEncoder('tiny', img_size=64, autocast_dtype='bfloat16')
    seen = []
    enc.patch_embed.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    with torch.autocast('cpu', dtype=torch.bfloat16):
        tokens = enc.embed(torch.randn(1, 3, 64, 64))
    assert seen == [torch.float32]
    assert tokens.dtype == torch.bfloat16  # then the residual stream in the autocast dtype
