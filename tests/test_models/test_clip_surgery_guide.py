"""Tests for CLIPSurgeryGuide: open_clip parity, the CLIPSurgery dual path, similarity prompts."""
import copy
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F
from open_clip.transformer import LayerScale

from mmseg.registry import MODELS
from mmsamptx.models.guides import CLIPGuidance, CLIPSurgeryGuide
from mmsamptx.models.text_encoders import OPENAI_IMAGENET_PROMPTS

TINY = 'mmsamptx-tiny-clip'  # ViT: width 64, 2 heads, 1 block, patch 16, 32² (grid 2²)
VIT_B = 'ViT-B-16-quickgelu'
ATOL = 1e-5


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory):
    """A full tiny open_clip checkpoint in open_clip's key format, and its model."""
    torch.manual_seed(0)
    model = open_clip.create_model(TINY).eval()
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pt'
    torch.save(model.state_dict(), path)
    return str(path), model


def _tiny(tiny_ckpt, **kwargs):
    kwargs.setdefault('clip_size', 64)
    kwargs.setdefault('surgery_blocks', 1)
    guide = MODELS.build(dict(type='CLIPSurgeryGuide', model_name=TINY, pretrained=tiny_ckpt[0],
                              **kwargs))
    guide.init_weights()
    return guide


@pytest.fixture(scope='module')
def vit_b():
    """A ViT-B/16 guide with random weights (all attention trainable) and a plain-CLIP twin."""
    torch.manual_seed(0)
    guide = CLIPSurgeryGuide(VIT_B, pretrained=None, clip_size=64, surgery_blocks=6,
                             finetune_attn_blocks=12)
    # Same visual weights, surgery off, native 224²; shares the text encoder.
    plain = CLIPSurgeryGuide(VIT_B, pretrained=None, clip_size=224, surgery_blocks=0,
                             text_cfg=guide.text_encoder)
    plain.visual.load_state_dict(guide.visual.state_dict())
    return guide, plain


def _open_clip_tokens(visual, images):
    """open_clip's own visual forward: every token after ln_post and proj, (B, 1+N, Cc)."""
    visual = copy.deepcopy(visual).eval()
    visual.output_tokens = True
    with torch.no_grad():
        pooled, tokens = visual(images)
    return torch.cat([pooled[:, None], tokens @ visual.proj], dim=1)


def _interpolated_table(table, old, new):
    patches = table[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(new, new), mode='bilinear', align_corners=False)
    return torch.cat([table[:1], patches[0].flatten(1).T])


def _surgery_reference(visual, images, surgery_blocks, new_grid):
    """The doc's equations (clip-guided-sam.md §2.1) in plain torch."""
    table = _interpolated_table(visual.positional_embedding, visual.grid_size[0], new_grid)
    x = F.conv2d(images, visual.conv1.weight, stride=visual.patch_size)
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x.flatten(2).transpose(1, 2)],
                  dim=1) + table
    x = visual.ln_pre(x)
    blocks = visual.transformer.resblocks
    for block in blocks[:len(blocks) - surgery_blocks]:
        x = block(x)
    x_ori = x_s = x
    for block in blocks[len(blocks) - surgery_blocks:]:
        attn = block.attn
        heads, width = attn.num_heads, x.shape[-1]
        d = width // heads
        h = block.ln_1(x_ori)
        q, k, v = (h @ attn.in_proj_weight.T + attn.in_proj_bias).split(width, dim=-1)
        q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))

        def merge(a):
            return a.transpose(1, 2).reshape(x.shape[0], -1, width) @ attn.out_proj.weight.T \
                + attn.out_proj.bias

        o = merge(torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v)
        z = merge(torch.softmax(v @ v.transpose(-1, -2) / math.sqrt(d), dim=-1) @ v)
        # Layer scale (Identity in CLIP ViTs) scales both attention outputs.
        x_ori = x_ori + block.ls_1(o)
        x_ori = x_ori + block.ls_2(block.mlp(block.ln_2(x_ori)))
        x_s = x_s + block.ls_1(z)
    x = torch.cat([x_ori[:, :1], x_s[:, 1:]], dim=1)
    return visual.ln_post(x) @ visual.proj


# ------------------------------------------------------------------- vision
def test_plain_clip_equals_open_clip_at_native_size(tiny_ckpt):
    guide = _tiny(tiny_ckpt, clip_size=32, surgery_blocks=0)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = guide.encode_image(images)
    assert tokens.shape == (2, 5, 64)
    torch.testing.assert_close(tokens, _open_clip_tokens(tiny_ckpt[1].visual, images),
                               atol=ATOL, rtol=0)


def test_plain_vit_b_equals_open_clip_at_224(vit_b):
    _, plain = vit_b
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        tokens = plain.encode_image(images)
    assert tokens.shape == (1, 197, 512)
    torch.testing.assert_close(tokens, _open_clip_tokens(plain.visual, images), atol=ATOL, rtol=0)


def test_plain_clip_with_interpolated_positions(tiny_ckpt):
    guide = _tiny(tiny_ckpt, clip_size=64, surgery_blocks=0)
    stored = guide.visual.positional_embedding.detach().clone()
    images = torch.randn(2, 3, 96, 96)  # resized to 64² here: grid 4² from the stored 2²
    with torch.no_grad():
        tokens = guide.encode_image(images)
    reference_visual = copy.deepcopy(tiny_ckpt[1].visual)
    reference_visual.positional_embedding = torch.nn.Parameter(
        _interpolated_table(stored, 2, 4))
    resized = F.interpolate(images, size=(64, 64), mode='bilinear', align_corners=False)
    assert tokens.shape == (2, 17, 64)
    torch.testing.assert_close(tokens, _open_clip_tokens(reference_visual, resized),
                               atol=ATOL, rtol=0)
    # The stored table keeps its checkpoint shape and values.
    assert torch.equal(guide.visual.positional_embedding, stored)
    assert stored.shape == (5, 64)


def test_surgery_tiny_equals_reference(tiny_ckpt):
    guide = _tiny(tiny_ckpt, clip_size=64, surgery_blocks=1)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = guide.encode_image(images)
        reference = _surgery_reference(guide.visual, images, 1, 4)
    torch.testing.assert_close(tokens, reference, atol=ATOL, rtol=0)
    # The dual path changes the patch tokens, not the CLS token.
    with torch.no_grad():
        plain = _tiny(tiny_ckpt, clip_size=64, surgery_blocks=0).encode_image(images)
    torch.testing.assert_close(tokens[:, 0], plain[:, 0], atol=ATOL, rtol=0)
    assert (tokens[:, 1:] - plain[:, 1:]).abs().max() > 1e-3


def test_surgery_with_layer_scale(tiny_ckpt):
    guide = _tiny(tiny_ckpt, clip_size=64, surgery_blocks=1)
    block = guide.visual.transformer.resblocks[0]
    block.ls_1, block.ls_2 = LayerScale(64, 0.5), LayerScale(64, 0.25)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = guide.encode_image(images)
        reference = _surgery_reference(guide.visual, images, 1, 4)
    torch.testing.assert_close(tokens, reference, atol=ATOL, rtol=0)


def test_surgery_vit_b_last_six_blocks_equal_reference(vit_b):
    guide, _ = vit_b
    images = torch.randn(2, 3, 80, 80)
    resized = F.interpolate(images, size=(64, 64), mode='bilinear', align_corners=False)
    with torch.no_grad():
        tokens = guide.encode_image(images)
        reference = _surgery_reference(guide.visual, resized, 6, 4)
    assert tokens.shape == (2, 17, 512)
    torch.testing.assert_close(tokens, reference, atol=ATOL, rtol=0)


def test_official_keys_load_and_state_dict_keeps_them(tiny_ckpt):
    guide = _tiny(tiny_ckpt)
    official = {k[len('visual.'):]: v for k, v in tiny_ckpt[1].state_dict().items()
                if k.startswith('visual.')}
    own = guide.visual.state_dict()
    assert set(own) == set(official)
    for key, value in official.items():
        assert torch.equal(own[key], value), key


def test_checkpoint_shape_mismatch_names_key_and_shapes(tiny_ckpt, tmp_path):
    state = dict(tiny_ckpt[1].state_dict())
    state['visual.positional_embedding'] = torch.zeros(17, 64)
    path = tmp_path / 'bad.pt'
    torch.save(state, path)
    guide = CLIPSurgeryGuide(TINY, pretrained=str(path), clip_size=64, surgery_blocks=1,
                             text_cfg=dict(pretrained=tiny_ckpt[0]))
    with pytest.raises(RuntimeError, match=r'visual\.positional_embedding has shape \(17, 64\).*'
                                           r'expects \(5, 64\)'):
        guide.init_weights()


# --------------------------------------------------------------------- text
def test_text_is_open_clip_minus_empty_prompt_renormalised(tiny_ckpt):
    guide = _tiny(tiny_ckpt)
    model = tiny_ckpt[1]
    tokenizer = open_clip.get_tokenizer(TINY)
    with torch.no_grad():
        raw = model.encode_text(tokenizer(['cat', 'traffic light']))
        empty = F.normalize(model.encode_text(
            tokenizer([template.format('') for template in OPENAI_IMAGENET_PROMPTS])), dim=-1)
    r = F.normalize(empty.mean(dim=0, keepdim=True), dim=-1)
    expected = F.normalize(raw - r, dim=-1)
    torch.testing.assert_close(guide.encode_text(['cat', 'traffic light']), expected,
                               atol=ATOL, rtol=0)


def test_text_computed_once_per_class(tiny_ckpt, monkeypatch):
    guide = _tiny(tiny_ckpt)
    prompts = []
    original = guide.text_encoder.clip.encode_text

    def counting(tokens, *args, **kwargs):
        prompts.append(tokens.shape[0])
        return original(tokens, *args, **kwargs)

    monkeypatch.setattr(guide.text_encoder.clip, 'encode_text', counting)
    first = guide.encode_text(['cat', 'dog', 'cat'])
    # r (the 80 empty prompts) once, then one prompt per distinct class.
    assert sorted(prompts) == [1, 1, len(OPENAI_IMAGENET_PROMPTS)]
    second = guide.encode_text(['dog', 'cat'])
    third = guide.encode_text(['cat', 'bird'])
    assert sorted(prompts) == [1, 1, 1, len(OPENAI_IMAGENET_PROMPTS)]
    torch.testing.assert_close(first[0], first[2])
    torch.testing.assert_close(second, first[[1, 0]])
    torch.testing.assert_close(third[0], first[0])


# --------------------------------------------------------------- similarity
@pytest.mark.parametrize('norm', ['tokens', 'channels'])
def test_similarity_fusion_and_prompts_by_hand(tiny_ckpt, norm):
    guide = _tiny(tiny_ckpt, norm=norm, threshold=0.8)
    images = torch.randn(2, 3, 48, 48)
    text = guide.encode_text(['cat', 'dog'])
    with torch.no_grad():
        out = guide(images, text)
        tokens = guide.encode_image(images)
    assert isinstance(out, CLIPGuidance)
    # V̂: L2 over tokens (the authors' code, all 1+N tokens) or per-token cosine (the paper).
    if norm == 'tokens':
        vision = tokens / tokens.pow(2).sum(dim=1, keepdim=True).sqrt()
    else:
        vision = tokens / tokens.pow(2).sum(dim=2, keepdim=True).sqrt()
        assert out.similarity.abs().max() <= 1 + 1e-6
    scores = torch.einsum('mtc,mc->mt', vision, text)[..., None]
    torch.testing.assert_close(out.vision, vision, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.similarity, scores, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.fused, vision + scores, atol=ATOL, rtol=0)
    assert out.text.shape == (2, 64) and out.fused.shape == (2, 17, 64)
    assert out.similarity.shape == (2, 17, 1) and out.grid == (4, 4)

    patches = scores[:, 1:, 0]
    lo, hi = patches.min(1, keepdim=True).values, patches.max(1, keepdim=True).values
    grid = ((patches - lo) / (hi - lo)).reshape(2, 1, 4, 4)
    sim_map = F.interpolate(grid, size=(48, 48), mode='bilinear', align_corners=False)
    torch.testing.assert_close(out.sim_map, sim_map, atol=ATOL, rtol=0)
    assert out.sim_map.shape == (2, 1, 48, 48)
    assert out.sim_map.min() >= 0 and out.sim_map.max() <= 1
    assert torch.equal(out.point_region, out.sim_map > 0.8)
    assert out.point_region.dtype == torch.bool
    # The maximum patch always leaves pixels above the threshold.
    assert out.point_region.flatten(1).any(dim=1).all()

    dense = F.interpolate(out.sim_map, size=(12, 12), mode='bilinear', align_corners=False)
    assert out.dense_prompt.shape == (2, 1, 12, 12)
    assert out.dense_prompt.dtype == torch.float32
    assert set(out.dense_prompt.unique().tolist()) <= {0.0, 255.0}
    assert torch.equal(out.dense_prompt, (dense > 0.8).float() * 255.0)


def test_point_region_never_empty_at_sam_size(tiny_ckpt):
    guide = _tiny(tiny_ckpt, clip_size=64)
    torch.manual_seed(1)
    with torch.no_grad():
        out = guide(torch.randn(8, 3, 256, 256), torch.randn(8, 64))
    assert out.point_region.flatten(1).any(dim=1).all()
    assert out.dense_prompt.shape == (8, 1, 64, 64)
    assert (out.dense_prompt == 255).flatten(1).any(dim=1).all()


def test_vision_once_per_image_for_several_classes(tiny_ckpt):
    guide = _tiny(tiny_ckpt)
    batches = []
    guide.visual.conv1.register_forward_hook(lambda m, i, o: batches.append(i[0].shape[0]))
    images = torch.randn(2, 3, 64, 64)
    names = ['cat', 'dog', 'bird', 'cat', 'road']
    img_index = torch.tensor([0, 0, 0, 1, 1])
    with torch.no_grad():
        out = guide(images, names, img_index)
    assert batches == [2]  # one visual pass over the 2 images for 5 samples
    assert out.fused.shape == (5, 17, 64) and out.sim_map.shape == (5, 1, 64, 64)
    with torch.no_grad():
        alone = guide(images[1:], ['road'])
    torch.testing.assert_close(out.fused[4:], alone.fused, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.sim_map[4:], alone.sim_map, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- training
def test_vit_b_attention_parameter_counts(vit_b):
    guide, plain = vit_b
    trainable = {n: p.numel() for n, p in guide.named_parameters() if p.requires_grad}
    assert sum(trainable.values()) == 28_348_416 == 12 * (768 * 2304 + 2304 + 768 * 768 + 768)
    assert all(n.startswith('visual.transformer.resblocks.') and '.attn.' in n for n in trainable)
    assert not any(p.requires_grad for p in guide.text_encoder.parameters())
    assert not any(p.requires_grad for p in plain.parameters())
    four = CLIPSurgeryGuide(VIT_B, pretrained=None, finetune_attn_blocks=4,
                            text_cfg=guide.text_encoder)
    names = [n for n, p in four.named_parameters() if p.requires_grad]
    assert sum(p.numel() for p in four.parameters() if p.requires_grad) == 9_449_472
    assert {int(n.split('.')[3]) for n in names} == {8, 9, 10, 11}


def test_gradient_reaches_only_attention(tiny_ckpt):
    guide = _tiny(tiny_ckpt, finetune_attn_blocks=1)
    guide.train()
    assert not guide.visual.training
    out = guide(torch.randn(2, 3, 64, 64), ['cat', 'dog'])
    out.fused.sum().backward()
    grads = {n for n, p in guide.named_parameters() if p.grad is not None}
    assert grads == {'visual.transformer.resblocks.0.attn.in_proj_weight',
                     'visual.transformer.resblocks.0.attn.in_proj_bias',
                     'visual.transformer.resblocks.0.attn.out_proj.weight',
                     'visual.transformer.resblocks.0.attn.out_proj.bias'}


# ------------------------------------------------------------------ errors
def test_errors_name_the_fault(tiny_ckpt):
    guide = _tiny(tiny_ckpt)
    with pytest.raises(ValueError, match=r"class_names\[1\] = ''"):
        guide(torch.randn(2, 3, 64, 64), ['cat', ''])
    with pytest.raises(ValueError, match=r'clip_size=50 .*patch size 16'):
        CLIPSurgeryGuide(TINY, pretrained=None, clip_size=50)
    with pytest.raises(ValueError, match=r'expected_dims=512 .*width of 64'):
        CLIPSurgeryGuide(TINY, pretrained=None, clip_size=64, surgery_blocks=1, expected_dims=512)
    with pytest.raises(ValueError, match=r'surgery_blocks=6 must be an int in \[0, 1\]'):
        CLIPSurgeryGuide(TINY, pretrained=None, clip_size=64)
    with pytest.raises(ValueError, match=r"norm='patch' is not one of \('tokens', 'channels'\)"):
        CLIPSurgeryGuide(TINY, pretrained=None, clip_size=64, surgery_blocks=1, norm='patch')
    with pytest.raises(ValueError, match=r"Unknown open_clip model_name 'ViT-X'.*Valid names"):
        CLIPSurgeryGuide('ViT-X', pretrained=None)
    with pytest.raises(ValueError, match=r'RN50.*VisionTransformer'):
        CLIPSurgeryGuide('RN50', pretrained=None)
    with pytest.raises(ValueError, match=r'text must be \(M, 64\)'):
        guide(torch.randn(2, 3, 64, 64), torch.randn(2, 32))
    with pytest.raises(ValueError, match=r'img_index values must lie in \[0, 2\)'):
        guide(torch.randn(2, 3, 64, 64), ['cat'], torch.tensor([2]))
