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
    with pytest.raises(ValueError,
                       match=r"targets must be distinct parts of \('q', 'k', 'v'\), got \('x',\)"):
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


# ---------------------------------------------------------------- learning
SIZE = 128        # image side of the generated task (tiny arch: an 8 x 8 token grid)
ITERS = 120       # training iterations of 4 images, each method
# Measured once each at 128 px (seed 0, loaded 2-core CPU): 120 iterations: PTSAM 24.5 -> 46.9,
# decoder fine-tuning 84.0, SAMed-style LoRA + decoder 24.1 -> 85.0; 150 iterations: 22.4 -> 44.0,
# 86.5, 22.2 -> 87.9. The margins leave room for the seed and the thread count.
PTSAM_GAIN = 12.0  # Dice points PTSAM must gain over its untrained tokens
PTSAM_GAP = 50.0   # Dice points PTSAM may trail decoder fine-tuning on a random tiny SAM (see below)
LORA_GAIN = 40.0   # Dice points the SAMed-style model must gain over its untrained start


def tie_mask_upscaling(model):
    """Tie the taps of the random decoder's transposed-conv upscaling (as test_ptsam.py explains)."""
    with torch.no_grad():
        for m in model.decode_head.mask_decoder.output_upscaling:
            if isinstance(m, torch.nn.ConvTranspose2d):
                m.weight.copy_(m.weight.mean((2, 3), keepdim=True).expand_as(m.weight))


def demo_runner(method, root, work_dir):
    """A Runner of the tiny microscopy config for ``method``, trained prompt-free, tested 'auto'."""
    from mmengine.runner import Runner
    cfg = Config.fromfile('configs/ptsam/demo/ptsam-decoder_demo.py')  # Dice-only, prompt-free
    cfg.work_dir = work_dir
    m = cfg.model
    m.data_preprocessor.size = m.data_preprocessor.test_cfg.size = (SIZE, SIZE)
    m.backbone.img_size = m.decode_head.image_size = SIZE
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = root
    for loader in ('val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.pipeline[1].scale = (SIZE, SIZE)
    if method != 'ptsam':  # the SAMed recipe: the decoder itself trains, no prompt tokens
        m.decode_head.frozen_decoder = False
        m.decode_head.prompt_cfg = None
        cfg.optim_wrapper.optimizer.update(lr=1e-3, weight_decay=0.01)
    if method == 'samed-lora':
        m.backbone.qkv_adapter_cfg = dict(type='LoRAQKV', rank=4, targets=('q', 'v'))
        m.embedding_cache = None
    cfg.train_cfg.max_iters = ITERS
    cfg.train_cfg.val_interval = ITERS + 1
    cfg.param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, by_epoch=False, begin=0,
                                end=ITERS)]
    cfg.default_hooks.logger.interval = 1000
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.pop('visualization')
    cfg.log_level = 'WARNING'
    return Runner.from_cfg(cfg)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Held-out Dice of the three methods, each trained from the same frozen random tiny SAM."""
    from mmsamptx.demo import make_microscopy
    tmp = tmp_path_factory.mktemp('ptsam_baselines')
    root = make_microscopy(str(tmp / 'microscopy'), num_images=32, size=SIZE)  # 16 shots, 16 held out
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops: one thread is as fast, and far faster on a busy machine
    out, sam = {}, None
    try:
        for method in ('ptsam', 'decoder-ft', 'samed-lora'):
            runner = demo_runner(method, root, str(tmp / method))
            model = runner.model
            if sam is None:
                tie_mask_upscaling(model)
                sam = {k: v.clone() for k, v in model.state_dict().items() if 'prompt_tokens' not in k}
            else:  # the same SAM weights for every method
                missing = model.load_state_dict(sam, strict=False).missing_keys
                assert all('lora_' in k for k in missing), missing
            count = sum(p.numel() for p in model.parameters() if p.requires_grad)
            before = runner.test()['Dice'] if method != 'decoder-ft' else None
            runner.train()
            lora_b = [b.weight.detach().clone() for blk in model.backbone.blocks
                      if isinstance(blk.attn.qkv, LoRAQKV) for b in blk.attn.qkv.lora_B.values()]
            out[method] = dict(count=count, before=before, after=runner.test()['Dice'], lora_b=lora_b)
    finally:
        torch.set_num_threads(threads)
        MMLogger.get_current_instance().setLevel(logging.INFO)
    return out


def test_ptsam_reaches_decoder_fine_tuning_within_a_margin(trained):
    """2,048 prompt parameters against 2.48 M decoder weights, both prompt-free, same 16 shots.

    On a *random* tiny SAM the decoder has no segmentation prior for tokens to
    steer (SA-1B's SAM has one, which is what the paper's "on par" rests on),
    so the gap here is wide (about 37 to 43 points); the margin bounds it, and
    PTSAM must still learn. Making the tiny SAM a point-prompted generalist
    first (prompted pre-training on a disjoint generated pool) was tried: on
    the semantic target it already solved the task prompt-free (88 Dice before
    any method trained), on per-cell targets it did not train in 150
    iterations, so neither is used.
    """
    ptsam, ft = trained['ptsam'], trained['decoder-ft']
    assert ptsam['count'] == 2048 and ft['count'] > 1000 * ptsam['count']
    assert ptsam['after'] >= ptsam['before'] + PTSAM_GAIN, ptsam
    assert ptsam['after'] >= ft['after'] - PTSAM_GAP, (ptsam, ft)


def test_samed_lora_baseline_trains(trained):
    lora, ft = trained['samed-lora'], trained['decoder-ft']
    assert lora['count'] == ft['count'] + lora_qkv_param_count(C, 4, 2, 4)
    assert lora['after'] >= lora['before'] + LORA_GAIN, lora
    assert all(b.abs().sum() > 0 for b in lora['lora_b'])        # every LoRA B left zero
