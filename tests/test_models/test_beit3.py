"""BEiT-3 (EVF-SAM's fusion encoder): equal to torchscale's BEiT3 and to the equations of
docs/methods/evf-sam.md §2 written here in plain torch; exact loading; counts; LoRA; checkpointing."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from mmsamptx.models.text_encoders import BEiT3
from mmsamptx.models.text_encoders.beit3_lora import lora_param_count

TINY = dict(arch='tiny', img_size=32, patch_size=16, vocab_size=64, max_source_positions=32)
S_TINY = 1 + (32 // 16) ** 2  # vision tokens: CLS + 4 patches


def torchscale_beit3(embed_dims, heads, ffn, layers, img_size, vocab_size, max_source_positions=1024):
    """torchscale's BEiT3 with EVF-SAM's configuration (its _get_large_config's flags)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # timm.models.layers shim
        from torchscale.architecture.config import EncoderConfig
        from torchscale.model.BEiT3 import BEiT3 as TorchscaleBEiT3
    cfg = EncoderConfig(img_size=img_size, patch_size=16, vocab_size=vocab_size, multiway=True,
                        layernorm_embedding=False, normalize_output=True, no_output_layer=True,
                        drop_path_rate=0.0, encoder_embed_dim=embed_dims, encoder_attention_heads=heads,
                        encoder_ffn_embed_dim=ffn, encoder_layers=layers,
                        max_source_positions=max_source_positions)
    return TorchscaleBEiT3(cfg).eval()


def randomise(module, seed):
    """Fill every tensor from a seeded generator, at scales that keep the softmax unsaturated."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.state_dict().items():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype)
            is_norm = 'norm' in name or '_ln.' in name
            if is_norm and name.endswith('weight'):
                p.copy_(1 + 0.2 * noise)
            elif name.endswith('bias'):
                p.copy_(0.1 * noise)
            elif p.dim() == 2 and 'embed' not in name or p.dim() == 4:  # Linear, patch conv
                p.copy_(noise / p[0].numel() ** 0.5)
            else:  # token and position tables, CLS and mask tokens
                p.copy_(0.5 * noise)
    return module


def equations_reference(sd, image, ids, pad, heads, patch=16, eps=1e-5):
    """BEiT-3's forward from the method notes' equations (§2.2), straight from a state dict.

    image (B,3,H,W), ids (B,L), pad (B,L) bool -> (B, S + L, D).
    """
    b = image.shape[0]
    v = F.conv2d(image, sd['vision_embed.proj.weight'], sd['vision_embed.proj.bias'], stride=patch)
    v = torch.cat([sd['vision_embed.cls_token'].expand(b, -1, -1), v.flatten(2).transpose(1, 2)], 1)
    s, n_text = v.shape[1], ids.shape[1]
    # Each modality reads its own position table from row 2.
    pos = torch.cat([sd['encoder.embed_positions.A.weight'][2:2 + s],
                     sd['encoder.embed_positions.B.weight'][2:2 + n_text]])
    x = torch.cat([v, sd['text_embed.weight'][ids]], 1) + pos
    keypad = torch.cat([torch.zeros(b, s, dtype=torch.bool), pad], 1)
    x = x * (~keypad)[..., None].to(x.dtype)

    def route(h, fn):  # vision expert A on [0, s), language expert B on [s, N)
        return torch.cat([fn(h[:, :s], 'A'), fn(h[:, s:], 'B')], 1)

    def ln(h, name):
        return route(h, lambda z, e: F.layer_norm(z, z.shape[-1:], sd[f'{name}.{e}.weight'],
                                                  sd[f'{name}.{e}.bias'], eps))

    def lin(h, name):
        return route(h, lambda z, e: z @ sd[f'{name}.{e}.weight'].T + sd[f'{name}.{e}.bias'])

    d = x.shape[-1]
    hd = d // heads
    i = 0
    while f'encoder.layers.{i}.self_attn.q_proj.A.weight' in sd:
        p = f'encoder.layers.{i}.'
        h = ln(x, p + 'self_attn_layer_norm')
        q, k, v_ = (lin(h, p + f'self_attn.{w}_proj').view(b, -1, heads, hd).transpose(1, 2)
                    for w in 'qkv')
        scores = (q * hd ** -0.5) @ k.transpose(-2, -1)
        scores = scores.masked_fill(keypad[:, None, None, :], float('-inf'))
        probs = torch.softmax(scores.float(), -1).to(scores.dtype)  # softmax in fp32
        a = (probs @ v_).transpose(1, 2).reshape(b, -1, d)
        x = x + lin(ln(a, p + 'self_attn.inner_attn_ln'), p + 'self_attn.out_proj')
        h = ln(x, p + 'final_layer_norm')

        def ffn(z, e):
            u = z @ sd[f'{p}ffn.{e}.fc1.weight'].T + sd[f'{p}ffn.{e}.fc1.bias']
            u = F.gelu(u.float()).to(u.dtype)  # exact GELU in fp32
            u = F.layer_norm(u, u.shape[-1:], sd[f'{p}ffn.{e}.ffn_layernorm.weight'],
                             sd[f'{p}ffn.{e}.ffn_layernorm.bias'], eps)
            return u @ sd[f'{p}ffn.{e}.fc2.weight'].T + sd[f'{p}ffn.{e}.fc2.bias']

        x = x + route(h, ffn)
        i += 1
    return ln(x, 'encoder.layer_norm')


def tiny_inputs(seed=1, b=3, length=6, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(b, 3, 32, 32, generator=g).to(dtype)
    ids = torch.randint(0, 64, (b, length), generator=g)
    pad = torch.zeros(b, length, dtype=torch.bool)
    if b >= 3:
        pad[1, 4:] = True  # right padding of different lengths
        pad[2, 2:] = True
    return image, ids, pad


@pytest.fixture(scope='module')
def tiny_pair():
    """(torchscale BEiT3, ours) sharing every tensor, all drawn from a seeded generator."""
    ref = randomise(torchscale_beit3(32, 4, 128, 2, 32, 64, max_source_positions=32), seed=0)
    ours = BEiT3(**TINY, fused_attn=False).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def test_state_dict_keys_are_torchscales(tiny_pair):
    ref, ours = tiny_pair
    assert list(ours.state_dict()) == list(ref.state_dict())


@pytest.mark.parametrize('fused_attn', [False, True])
def test_tiny_equals_torchscale_and_the_equations(tiny_pair, fused_attn):
    ref, ours = tiny_pair
    ours.encoder.layers[0].self_attn.fused_attn = ours.encoder.layers[1].self_attn.fused_attn = fused_attn
    image, ids, pad = tiny_inputs()
    with torch.no_grad():
        for mask in (pad, None, torch.zeros_like(ids)):  # right padding, none, EVF's int64 zeros
            want = ref(textual_tokens=ids, visual_tokens=image, text_padding_position=mask)['encoder_out']
            got = ours(image, ids, mask)
            assert got.shape == (3, S_TINY + 6, 32)
            assert (got - want).abs().max() <= 1e-5
        eq = equations_reference(ours.state_dict(), image, ids, pad, heads=4)
        assert (ours(image, ids, pad) - eq).abs().max() <= 1e-5
    for layer in ours.encoder.layers:
        layer.self_attn.fused_attn = False


def test_tiny_float64_matches_torchscale_to_rounding(tiny_pair):
    """In fp64 the fp32 softmax and GELU casts are the only rounding: both sides make them."""
    ref, ours = tiny_pair
    ref64 = ref.double()
    ours64 = BEiT3(**TINY, fused_attn=False).double().eval()
    ours64.load_state_dict(ref64.state_dict())
    image, ids, pad = tiny_inputs(dtype=torch.float64)
    with torch.no_grad():
        want = ref64(textual_tokens=ids, visual_tokens=image, text_padding_position=pad)['encoder_out']
        got = ours64(image, ids, pad)
    ref.float()
    assert (got - want).abs().max() <= 1e-9


def test_padding_positions_and_experts_behave_as_documented(tiny_pair):
    _, ours = tiny_pair
    image, ids, _ = tiny_inputs(b=1, length=4)
    with torch.no_grad():
        base = ours(image, ids, torch.zeros(1, 4, dtype=torch.bool))
        # Extra padding changes nothing unpadded (the CLS in particular).
        longer = torch.cat([ids, torch.ones(1, 3, dtype=torch.long)], 1)
        pad = torch.zeros(1, 7, dtype=torch.bool)
        pad[:, 4:] = True
        padded = ours(image, longer, pad)
        assert (padded[:, :S_TINY + 4] - base).abs().max() <= 1e-5
        # Rows 0-1 of both position tables are never read.
        model = BEiT3(**TINY, fused_attn=False).eval()
        model.load_state_dict(ours.state_dict())
        model.encoder.embed_positions.A.weight[:2] += 5
        model.encoder.embed_positions.B.weight[:2] += 5
        assert torch.equal(model(image, ids), ours(image, ids))
        # Swapping the vision and language experts changes the output.
        sd = ours.state_dict()
        swapped = {k.replace('.A.', '.X.').replace('.B.', '.A.').replace('.X.', '.B.'): v
                   for k, v in sd.items() if 'embed_positions' not in k}
        swapped.update({k: v for k, v in sd.items() if 'embed_positions' in k})
        model.load_state_dict(swapped)
        assert (model(image, ids) - base).abs().max() > 1e-2


def test_base_equals_torchscale():
    """BEiT-3-B, every tensor random, one short padded input (built on meta, filled once).

    A 64-px image (16 patches) keeps the CPU time small; the image size only sets the
    length of position table A, the layers are BEiT-3-B's.
    """
    with torch.device('meta'):
        ref = torchscale_beit3(768, 12, 3072, 12, 64, 64010)
        ours = BEiT3('base', img_size=64, fused_attn=True).eval()
    ref = randomise(ref.to_empty(device='cpu'), seed=3)
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, 64, 64, generator=g)
    ids = torch.tensor([[0, 812, 55, 2047, 2, 1]])
    pad = torch.tensor([[False] * 5 + [True]])
    with torch.no_grad():
        want = ref(textual_tokens=ids, visual_tokens=image, text_padding_position=pad)['encoder_out']
        got = ours(image, ids, pad)
    assert got.shape == (1, 17 + 6, 768)
    assert (got - want).abs().max() <= 1e-5


def beit3_core_count(d, layers, vocab=64010, patches=196, max_pos=1024):
    """docs/methods/evf-sam.md §7: the BEiT-3 parameters (both experts, no pre-training heads)."""
    expert = 4 * (d * d + d) + 3 * 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d) + 2 * 4 * d
    return (vocab * d + (3 * 16 * 16 * d + d) + 2 * d + ((patches + 3) * d + max_pos * d)
            + 2 * layers * expert + 4 * d)


def test_parameter_counts_on_meta():
    with torch.device('meta'):
        large, base = BEiT3('large'), BEiT3('base')
    assert sum(p.numel() for p in large.parameters()) == beit3_core_count(1024, 24) == 672_702_464
    assert sum(p.numel() for p in base.parameters()) == beit3_core_count(768, 12) == 220_987_392
    assert large.embed_dims == 1024 and large.max_text_len == 1022 and large.num_vision_tokens == 197
    assert len(large.state_dict()) == 971 and len(base.state_dict()) == 491
    with torch.device('meta'):
        lora = BEiT3('large', lora_cfg=dict(r=8, alpha=16, target_modules=['q_proj', 'v_proj']))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert trainable == lora_param_count(24, 1024, 4096, 8, ['q_proj', 'v_proj'], ['A', 'B']) == 1_572_864
    assert sum(p.numel() for p in lora.parameters()) == 672_702_464 + 1_572_864


def test_activation_checkpointing_gives_the_same_gradients(tiny_pair):
    _, ours = tiny_pair
    image, ids, pad = tiny_inputs()
    grads = []
    for with_cp in (False, True):
        model = BEiT3(**TINY, with_cp=with_cp).train()
        model.load_state_dict(ours.state_dict())
        model(image, ids, pad)[:, 0].square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], atol=1e-6), name


def test_lora_starts_equal_and_trains_only_lora(tiny_pair):
    _, ours = tiny_pair
    cfg = dict(r=4, alpha=8, target_modules=['q_proj', 'v_proj', 'fc1'])
    model = BEiT3(**TINY, fused_attn=False, lora_cfg=cfg).eval()
    # The torchscale-named weights load into peft's base_layer (the init-file path).
    from mmsamptx.models.text_encoders.beit3_checkpoint import load_beit3_weights
    load_beit3_weights(model, ours.state_dict(), 'plain tiny')
    image, ids, pad = tiny_inputs()
    with torch.no_grad():
        assert (model(image, ids, pad) - ours(image, ids, pad)).abs().max() <= 1e-6  # B = 0
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all('lora_' in n for n in trainable)
    expected = lora_param_count(2, 32, 128, 4, ['q_proj', 'v_proj', 'fc1'], ['A', 'B'])
    assert sum(trainable.values()) == expected == 2 * 2 * 4 * (64 + 64 + 160)
    # With B != 0 the model is the plain model with W + (alpha / r) B A, merged by hand.
    merged = {k: v.clone() for k, v in ours.state_dict().items()}
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, module in model.named_modules():
            if hasattr(module, 'lora_B'):
                module.lora_B['default'].weight.copy_(0.1 * torch.randn(
                    module.lora_B['default'].weight.shape, generator=g))
                delta = module.lora_B['default'].weight @ module.lora_A['default'].weight
                merged[f'{name}.weight'] += (8 / 4) * delta
        plain = BEiT3(**TINY, fused_attn=False).eval()
        plain.load_state_dict(merged)
        assert (model(image, ids, pad) - plain(image, ids, pad)).abs().max() <= 1e-5


def test_lora_on_one_expert_and_bad_configs():
    model = BEiT3(**TINY, lora_cfg=dict(r=2, target_modules='out_proj', experts='B'))
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert n == lora_param_count(2, 32, 128, 2, ['out_proj'], ['B']) == 2 * 2 * 64
    with pytest.raises(ValueError, match="unknown target 'qkv'"):
        BEiT3(**TINY, lora_cfg=dict(r=2, target_modules=['qkv']))
    with pytest.raises(ValueError, match="unknown key 'rank'"):
        BEiT3(**TINY, lora_cfg=dict(rank=2))


def test_init_file_round_trip_and_named_errors(tmp_path, tiny_pair, monkeypatch):
    _, ours = tiny_pair
    sd = ours.state_dict()
    state = {'beit3.' + k: v.clone() for k, v in sd.items()}
    state['mim_head.weight'] = torch.zeros(8, 32)  # a pre-training head: ignored
    path = tmp_path / 'beit3_tiny.pth'
    torch.save({'model': state}, path)
    model = BEiT3(**TINY, fused_attn=False, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    image, ids, pad = tiny_inputs()
    with torch.no_grad():
        assert torch.equal(model.eval()(image, ids, pad), ours(image, ids, pad))

    # fp16 file into an fp32 model: cast per tensor.
    torch.save({'model': {k: v.half() for k, v in state.items()}}, tmp_path / 'half.pth')
    model = BEiT3(**TINY, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'half.pth')))
    model.init_weights()
    assert model.text_embed.weight.dtype == torch.float32
    assert torch.equal(model.text_embed.weight, sd['text_embed.weight'].half().float())

    def fails(bad, match):
        torch.save({'model': bad}, tmp_path / 'bad.pth')
        m = BEiT3(**TINY, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'bad.pth')))
        with pytest.raises(ValueError, match=match):
            m.init_weights()

    renamed = dict(state)
    renamed['beit3.encoder.layers.0.self_attn.q_proj.C.weight'] = renamed.pop(
        'beit3.encoder.layers.0.self_attn.q_proj.A.weight')
    fails(renamed, r"'beit3\.encoder\.layers\.0\.self_attn\.q_proj\.C\.weight' has no counterpart")
    reshaped = dict(state)
    reshaped['beit3.encoder.embed_positions.A.weight'] = torch.zeros(9, 32)
    fails(reshaped, r"'beit3\.encoder\.embed_positions\.A\.weight' has shape \(9, 32\) in the file "
                    r'but \(7, 32\)')
    missing = {k: v for k, v in state.items() if k != 'beit3.encoder.layer_norm.B.bias'}
    fails(missing, r"lacks 1 key\(s\).*'beit3\.encoder\.layer_norm\.B\.bias'")

    # A URL: taken from the torch hub cache when there; offline, the URL and destination named.
    url = 'https://example.invalid/beit3/beit3_tiny.pth'
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))

    def offline(*args, **kwargs):
        raise OSError('network unreachable')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    m = BEiT3(**TINY, init_cfg=dict(type='Pretrained', checkpoint=url))
    with pytest.raises(RuntimeError, match=r'could not download the BEiT-3 checkpoint '
                                           r'https://example\.invalid/beit3/beit3_tiny\.pth.*put it at '
                                           + str(tmp_path / 'hub' / 'checkpoints' / 'beit3_tiny.pth')):
        m.init_weights()
    (tmp_path / 'hub' / 'checkpoints').mkdir(parents=True, exist_ok=True)
    path.rename(tmp_path / 'hub' / 'checkpoints' / 'beit3_tiny.pth')
    m.init_weights()
    assert torch.equal(m.text_embed.weight, sd['text_embed.weight'])
    with pytest.raises(FileNotFoundError, match='beit3_large_patch16_224.pth.*https://github.com/addf400'):
        BEiT3(**TINY, init_cfg=dict(type='Pretrained',
                                    checkpoint=str(tmp_path / 'beit3_large_patch16_224.pth'))).init_weights()


def test_input_errors_name_the_fault(tiny_pair):
    _, ours = tiny_pair
    image, ids, pad = tiny_inputs()
    with pytest.raises(ValueError, match=r'images of shape \(B, 3, 32, 32\), got \(3, 3, 48, 48\)'):
        ours(torch.zeros(3, 3, 48, 48), ids, pad)
    with pytest.raises(ValueError, match='31 tokens, more than the 30'):
        ours(image, torch.zeros(3, 31, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown BEiT-3 arch 'huge'; valid: large, base, tiny"):
        BEiT3('huge')
