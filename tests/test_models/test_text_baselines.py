"""The SAM-PTx authors' two text baselines (text -> prompt encoder, text -> mask decoder) against
their equations, their parameter counts, and SAM's decoder on the mixed tokens."""
import pytest
import torch
import torch.nn as nn
from mmseg.registry import MODELS

from mmsamptx.models.heads import SAMPromptableHead, TextCrossAttention, TextPromptToken
from mmsamptx.models.utils import parameter_report

DECODER_VIT_B = 4_058_340   # SAM ViT-B mask decoder (docs/methods/samptx-authors.md §4)


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def randomise(module, seed=0, std=0.1):
    """Fill every parameter (LN's 1s and 0s, MHA's zero biases included) so equivalences mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


# --------------------------------------------------------------- text -> prompt encoder (§3.7)
def test_text_prompt_token_equals_its_equation_and_counts():
    tok = MODELS.build(dict(type='TextPromptToken', text_dims=512, embed_dims=256))
    assert n_params(tok) == 131_584 == 512 * 256 + 256 + 256
    assert tok.proj.bias is None
    assert abs(tok.proj.weight.std().item() - 0.02) < 1e-3   # N(0, 0.02²)
    t = torch.randn(3, 512)
    with torch.no_grad():
        ref = t @ tok.proj.weight.T + tok.type_embed.weight[0]
        out = tok(t)
        assert out.shape == (3, 1, 256)
        assert (out[:, 0] - ref).abs().max() <= 1e-5
        none = tok(None, batch_size=2)
    assert none.shape == (2, 1, 256) and torch.equal(none[1, 0], tok.no_text_embed.weight[0])
    with pytest.raises(ValueError, match=r'text must be \(B, 512\), got \(3, 256\)'):
        tok(torch.randn(3, 256))


def test_head_prompt_encoder_appends_one_token_after_the_padding(tiny_sam_checkpoint):
    path, sam = tiny_sam_checkpoint
    head = SAMPromptableHead(image_size=64, text_injection='prompt_encoder', checkpoint=path)
    head.init_weights()
    points = torch.rand(2, 5, 2) * 64
    labels = torch.ones(2, 5, dtype=torch.long)
    text = torch.randn(2, 512)
    with torch.no_grad():
        sparse, dense = head.embed_prompts(2, points, labels, None, text)
        sam_sparse, sam_dense = sam.prompt_encoder((points, labels), None, None)
        assert sparse.shape == (2, 7, 256)   # 5 points + 1 pad + 1 text
        assert sam_sparse.shape == (2, 6, 256)
        assert (sparse[:, :6] - sam_sparse).abs().max() <= 1e-6
        assert (sparse[:, 6:] - head.text_prompt_token(text)).abs().max() <= 1e-6
        assert torch.equal(dense, sam_dense)
        no_text, _ = head.embed_prompts(2, points, labels, None, None)
        assert torch.equal(no_text[:, 6], head.text_prompt_token.no_text_embed.weight.expand(2, -1))
        masks, iou = head(torch.randn(2, 256, 4, 4), points, labels, None, text)
    assert masks.shape == (2, 1, 16, 16) and iou.shape == (2, 1)


# --------------------------------------------------------------- text -> mask decoder (§3.8)
def cross_attention_by_hand(block, tokens, text, heads=8):
    """tokens <- LN(tokens + MHA(tokens, t~, t~)); tokens <- LN(tokens + FFN(tokens)), written out."""
    c = tokens.shape[-1]
    t = text @ block.text_proj.weight.T + block.text_proj.bias                     # (B, C)
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    q = tokens @ w[:c].T + b[:c]                                                   # (B, T, C)
    k = t @ w[c:2 * c].T + b[c:2 * c]                                              # (B, C)
    v = t @ w[2 * c:].T + b[2 * c:]
    d = c // heads
    qh = q.unflatten(-1, (heads, d)).transpose(1, 2)                               # (B, h, T, d)
    kh = k.unflatten(-1, (heads, d))[:, :, None, :]                                # (B, h, 1, d)
    vh = v.unflatten(-1, (heads, d))[:, :, None, :]
    attn = (qh @ kh.transpose(-1, -2) / d ** 0.5).softmax(-1)                      # (B, h, T, 1)
    out = (attn @ vh).transpose(1, 2).flatten(2)                                   # (B, T, C)
    out = out @ block.attn.out_proj.weight.T + block.attn.out_proj.bias

    def ln(x):
        mu, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
        return (x - mu) / torch.sqrt(var + block.norm.eps) * block.norm.weight + block.norm.bias

    def ffn(x):
        h = torch.relu(x @ block.ffn[0].weight.T + block.ffn[0].bias)
        return h @ block.ffn[2].weight.T + block.ffn[2].bias

    x = ln(tokens + out)
    return ln(x + ffn(x)), out, v


def test_text_cross_attention_equals_its_equations_and_counts():
    block = MODELS.build(dict(type='TextCrossAttention', text_dims=512, embed_dims=256))
    assert n_params(block) == 526_592 == 131_328 + 263_168 + 512 + 131_584
    assert n_params(block.text_proj) == 131_328 and n_params(block.attn) == 263_168
    assert n_params(block.norm) == 512 and n_params(block.ffn) == 131_584
    assert block.attn.num_heads == 8 and block.attn.batch_first
    randomise(block)
    g = torch.Generator().manual_seed(1)
    tokens, text = torch.randn(3, 12, 256, generator=g), torch.randn(3, 512, generator=g)
    with torch.no_grad():
        ref, attn_out, v = cross_attention_by_hand(block, tokens, text)
        assert (block(tokens, text) - ref).abs().max() <= 1e-5
        # one key: softmax weight 1, so every token receives out_proj(v_proj(t~))
        direct = block.attn.out_proj(v)
        assert (attn_out - direct[:, None, :]).abs().max() <= 1e-5
        t = block.text_proj(text)[:, None, :]
        mha, _ = block.attn(tokens, t, t)
        assert (mha - direct[:, None, :].expand_as(mha)).abs().max() <= 1e-5


class MixThenTransformer(nn.Module):
    """SAM's transformer after a token transform: SAM's own predict_masks on mixed tokens."""

    def __init__(self, transformer, mix):
        super().__init__()
        self.transformer, self.mix = transformer, mix

    def forward(self, image_embedding, image_pe, point_embedding):
        return self.transformer(image_embedding, image_pe, self.mix(point_embedding))


def test_head_decoder_cross_attn_is_sam_on_the_mixed_tokens(tiny_sam_checkpoint):
    path, sam = tiny_sam_checkpoint
    head = SAMPromptableHead(image_size=64, text_injection='decoder_cross_attn', checkpoint=path)
    head.init_weights()
    randomise(head.text_cross_attn, seed=2)
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(1, 256, 4, 4, generator=g)
    points = torch.rand(2, 3, 2, generator=g) * 64
    labels = torch.tensor([[1, 1, 0], [1, 0, 1]])
    text = torch.randn(2, 512, generator=g)
    sparse, dense = sam.prompt_encoder((points, labels), None, None)
    with torch.no_grad():
        ours, ours_iou = head(emb, points, labels, None, text)
        for i in range(2):   # SAM repeats one embedding per prompt; one prompt set at a time
            def mix(x, i=i):
                return cross_attention_by_hand(head.text_cross_attn, x, text[i:i + 1])[0]
            ref_dec = sam.mask_decoder
            original = ref_dec.transformer
            ref_dec.transformer = MixThenTransformer(original, mix)
            try:
                ref, ref_iou = ref_dec(emb, sam.prompt_encoder.get_dense_pe(), sparse[i:i + 1],
                                       dense[i:i + 1], False)
            finally:
                ref_dec.transformer = original
            assert (ours[i:i + 1] - ref).abs().max() <= 1e-5
            assert (ours_iou[i:i + 1] - ref_iou).abs().max() <= 1e-5
        plain, _ = SAMPromptableHead(image_size=64, checkpoint=path)(emb, points, labels)
    assert plain.shape == ours.shape and (plain - ours).abs().max() > 1e-2   # the text mattered
    with pytest.raises(ValueError, match="'decoder_cross_attn' needs text_embeds"):
        head(emb, points, labels)


def test_decoder_token_mixer_sees_output_then_sparse_tokens(tiny_sam_checkpoint):
    path, _ = tiny_sam_checkpoint
    head = SAMPromptableHead(image_size=64, checkpoint=path)
    head.init_weights()
    seen = []

    def mixer(tokens):
        seen.append(tokens.clone())
        return tokens

    sparse = torch.randn(2, 4, 256)
    dense = torch.randn(2, 256, 4, 4)
    pe = head.prompt_encoder.get_dense_pe()
    emb = torch.randn(1, 256, 4, 4)
    with torch.no_grad():
        a = head.mask_decoder(emb, pe, sparse, dense, False, token_mixer=mixer)[0]
        b = head.mask_decoder(emb, pe, sparse, dense, False)[0]
    assert torch.equal(a, b)
    dec = head.mask_decoder
    assert seen[0].shape == (2, 5 + 4, 256)
    assert torch.equal(seen[0][0, 0], dec.iou_token.weight[0])
    assert torch.equal(seen[0][0, 1:5], dec.mask_tokens.weight)
    assert torch.equal(seen[0][:, 5:], sparse)


# --------------------------------------------------------------- trainable parameters, ViT-B sizes (§4)
@pytest.mark.parametrize('injection, extra', [('prompt_encoder', 131_584),
                                              ('decoder_cross_attn', 526_592)])
def test_head_trainable_parameters_at_vit_b(injection, extra):
    head = SAMPromptableHead(text_injection=injection)   # defaults: ViT-B's decoder, frozen prompt encoder
    rep = parameter_report(head)
    assert rep['mask_decoder'][0] == DECODER_VIT_B
    assert rep['prompt_encoder'][0] == 0
    assert rep['total'][0] == DECODER_VIT_B + extra
    assert {4_189_924: 'prompt_encoder', 4_584_932: 'decoder_cross_attn'}[rep['total'][0]] == injection
    # new parameters: they train even with the prompt encoder and the decoder frozen
    frozen = SAMPromptableHead(text_injection=injection, frozen_prompt_encoder=True, frozen_decoder=True)
    assert parameter_report(frozen)['total'][0] == extra


def test_older_text_injections_unchanged():
    for injection in ('prompt', 'decoder'):
        head = SAMPromptableHead(text_injection=injection)
        assert isinstance(head.text_proj, nn.Linear) and head.text_proj.bias is not None
        assert head.text_prompt_token is None and head.text_cross_attn is None
        assert parameter_report(head)['total'][0] == DECODER_VIT_B + 512 * 256 + 256


def test_unknown_text_injection_lists_the_choices():
    with pytest.raises(ValueError, match="'prompt_encoder', 'decoder_cross_attn'.*got 'text'"):
        SAMPromptableHead(text_injection='text')


def test_text_modules_under_bfloat16_autocast(tiny_sam_checkpoint):
    path, _ = tiny_sam_checkpoint
    for injection in ('prompt_encoder', 'decoder_cross_attn'):
        head = SAMPromptableHead(image_size=64, text_injection=injection, checkpoint=path,
                                 autocast_dtype='bfloat16')
        head.init_weights()
        masks, iou = head(torch.randn(2, 256, 4, 4), torch.rand(2, 5, 2) * 64, None, None,
                          torch.randn(2, 512))
        assert masks.dtype == torch.float32 and torch.isfinite(masks).all()
        masks.mean().backward()
        module = head.text_prompt_token or head.text_cross_attn
        for name, p in module.named_parameters():   # every parameter in the graph (DDP)
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
            if name == 'no_text_embed.weight':   # text was given: the no-text token is unused
                assert torch.equal(p.grad, torch.zeros_like(p.grad))
