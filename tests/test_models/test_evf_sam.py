"""EVF-SAM (docs/methods/evf-sam.md): the prompt path against a reference assembled here from
segment_anything's Sam, our BEiT-3 and a plain Linear-ReLU-Linear (§1, §3, §9); the loss from
§10's equations; multimask rules (§3); exact loading of a checkpoint written here in the released
key layout (§6.2) in fp16 / mixed dtypes; several expressions per call; errors; counts (§7, §8)."""
import io
import os.path as osp

import numpy as np
import pytest
import sentencepiece as spm
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from sam_helpers import build_reference_sam

import mmsamptx  # noqa: F401
from mmsamptx.models.utils.evf_checkpoint import evf_hub_path, load_evf_checkpoint

init_default_scope('mmseg')
WORDS = ['the red square', 'the blue circle on the left', 'the green one', 'the square on the right',
         'zebra top left', 'the man with a hat']


@pytest.fixture(scope='module')
def spm_file(tmp_path_factory):
    """A tiny sentencepiece model (XLM-R's unk/bos/eos = 0/1/2, as beit3.spm)."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(WORDS * 20), model_writer=buf, vocab_size=50,
                                   character_coverage=1.0, hard_vocab_limit=False, minloglevel=2)
    path = tmp_path_factory.mktemp('spm') / 'sentencepiece.bpe.model'
    path.write_bytes(buf.getvalue())
    return str(path)


def tiny_cfg(spm_file, **kw):
    """SAM 'tiny' at 64² (decoder as SAM's, to match the reference) + BEiT-3 'tiny' at 32²."""
    cfg = dict(type='EVFSAM',
               visual_model=dict(type='EVFVisualSAM', arch='tiny', img_size=64),
               fusion_encoder=dict(type='BEiT3', arch='tiny', img_size=32, vocab_size=80,
                                   max_source_positions=40),
               projector=dict(type='EVFPromptProjector'),
               tokenizer=dict(model_file=spm_file))
    cfg.update(kw)
    return cfg


def build(cfg, seed=0):
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():  # SAM's zero-initialised tables, so that every tensor matters
        for name, p in model.named_parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape) * 0.02)
    return model.eval()


@pytest.fixture(scope='module')
def model(spm_file):
    return build(tiny_cfg(spm_file))


def evf_layout(model, dtype=torch.float16):
    """Our state dict in the released layout, written from the method notes' table (§6.2)."""
    out = {}
    for k, v in model.state_dict().items():
        if k.startswith('visual_model.neck.layers.'):
            k = 'visual_model.image_encoder.neck.' + k[len('visual_model.neck.layers.'):]
        elif k.startswith('fusion_encoder.'):
            k = 'mm_extractor.beit3.' + k[len('fusion_encoder.'):]
        elif k.startswith('projector.layers.'):
            k = 'text_hidden_fcs.0.' + k[len('projector.layers.'):]
        else:
            assert k.startswith('visual_model.'), k
        out[k] = v.detach().to(dtype).clone()
    return out


def image(h=48, w=64, seed=0):
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


# ------------------------------------------------------------------------ the prompt path
def reference_logits(model, img, text):
    """One expression through segment_anything's Sam + our BEiT-3 + a plain projector (§1)."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF
    sam = build_reference_sam(64)
    sam.load_state_dict({k[len('visual_model.'):]: v for k, v in evf_layout(model, torch.float32).items()
                         if k.startswith('visual_model.')})
    sam.eval()
    h, w = img.shape[:2]
    assert max(h, w) == 64  # SAM's long-side resize is then the identity (tested apart below)
    x = (torch.from_numpy(img).permute(2, 0, 1).float() - sam.pixel_mean) / sam.pixel_std
    x = F.pad(x, (0, 64 - w, 0, 64 - h))[None]
    view = TF.resize(torch.from_numpy(img).permute(2, 0, 1).float() / 255, [32, 32],
                     InterpolationMode.BICUBIC, antialias=False)
    view = ((view - 0.5) / 0.5)[None]
    ids, pad = model.tokenizer([text])
    cls = model.fusion_encoder(view, ids, pad)[:, 0]
    fc = model.projector.layers
    token = (torch.relu(cls @ fc[0].weight.T + fc[0].bias) @ fc[2].weight.T + fc[2].bias)[:, None]
    dense = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(1, -1, 4, 4)
    low, iou = sam.mask_decoder(sam.image_encoder(x), sam.prompt_encoder.get_dense_pe(), token, dense,
                                multimask_output=False)
    return sam.postprocess_masks(low, (h, w), (h, w))[0, 0], iou[0, 0]


@torch.no_grad()
def test_prompt_path_equals_reference_and_batches(model):
    img = image()
    texts = ['the red square', 'the blue circle on the left', 'zebra']  # padded in one batch
    logits, scores = model.predict_logits([torch.from_numpy(img).permute(2, 0, 1)], [texts])
    assert logits[0].shape == (3, 48, 64) and scores[0].shape == (3,)
    for i, t in enumerate(texts):
        ref, ref_iou = reference_logits(model, img, t)
        torch.testing.assert_close(logits[0][i], ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(scores[0][i], ref_iou, atol=1e-5, rtol=0)
    assert (logits[0][0] - logits[0][1]).abs().max() > 1e-4  # the text matters (if little, at init)


@torch.no_grad()
def test_several_expressions_per_call_equal_one_call_each(model):
    img = image(50, 70, seed=1)
    texts = ['the red square', 'the square on the right', 'the green one', '[semantic] hat']
    calls = []
    hook = model.visual_model.image_encoder.register_forward_hook(
        lambda mod, args, out: calls.append(args[0].shape[0]))
    fused = []
    hook2 = model.fusion_encoder.register_forward_hook(lambda mod, args, out: fused.append(out.shape[0]))
    out = model.predict_expressions(img, texts)
    hook.remove()
    hook2.remove()
    assert calls == [1] and fused == [4]  # one SAM image pass, one BEiT-3 batch of 4
    assert out['masks'].shape == (4, 50, 70) and out['masks'].dtype == bool
    assert out['scores'].shape == (4,) and out['scores'].dtype == np.float32
    for i, t in enumerate(texts):
        one = model.predict_expressions(img, [t])
        np.testing.assert_array_equal(one['masks'][0], out['masks'][i])
        np.testing.assert_allclose(one['scores'][0], out['scores'][i], atol=1e-5)
    # Two images of different sizes in one batch, each with its own expressions.
    imgs = [torch.from_numpy(image(40, 30, 2)).permute(2, 0, 1), torch.from_numpy(img).permute(2, 0, 1)]
    logits, _ = model.predict_logits(imgs, [['the red square'], texts[:2]], chunk=2)
    assert [tuple(z.shape) for z in logits] == [(1, 40, 30), (2, 50, 70)]
    alone, _ = model.predict_logits(imgs[1:], [texts[:2]])
    torch.testing.assert_close(logits[1], alone[0], atol=1e-5, rtol=0)


def test_sam_view_is_within_one_grey_level_of_pil():
    from PIL import Image

    from mmsamptx.models.heads.evf_visual_sam import resize_longest_side
    img = image(300, 200, seed=3)
    ours = resize_longest_side(torch.from_numpy(img).permute(2, 0, 1), 1024)
    assert ours.shape == (3, 1024, 683)  # int(200 * 1024 / 300 + 0.5)
    pil = np.asarray(Image.fromarray(img).resize((683, 1024), Image.BILINEAR)).astype(np.int32)
    assert np.abs(ours.permute(1, 2, 0).numpy().astype(np.int32) - pil).max() <= 1


def test_loss_equals_the_authors_equations(model):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    imgs = [torch.from_numpy(image(48, 64, s)).permute(2, 0, 1).flip(0) for s in (4, 5)]  # BGR inputs
    samples = []
    for n, s in ((2, 0), (1, 1)):
        ds = SegDataSample(metainfo=dict(expressions=WORDS[s:s + n]))
        gt = torch.from_numpy(np.random.default_rng(s).random((n, 48, 64)) > 0.7).long()
        ds.gt_sem_seg = PixelData(data=gt)
        samples.append(ds)
    with torch.no_grad():
        losses = model.loss(imgs, samples)
        logits, _ = model.predict_logits([i.flip(0) for i in imgs],
                                         [s.expressions for s in samples])
    z = torch.cat(logits)
    t = torch.cat([s.gt_sem_seg.data for s in samples]).float()
    bce = F.binary_cross_entropy_with_logits(z, t, reduction='none').flatten(1).mean(1)
    p = z.sigmoid().flatten(1)
    tf = t.flatten(1)
    dice = 1 - (2 * (p / 1000 * tf).sum(-1) + 1e-6) / ((p / 1000).sum(-1) + (tf / 1000).sum(-1) + 1e-6)
    torch.testing.assert_close(losses['loss_bce'], 2.0 * bce.sum() / (3 + 1e-8), atol=1e-6, rtol=0)
    torch.testing.assert_close(losses['loss_dice'], 0.5 * dice.sum() / (3 + 1e-8), atol=1e-6, rtol=0)


def test_multimask_rules(spm_file):
    from mmsamptx.models.heads import EVFVisualSAM
    vm = EVFVisualSAM('tiny', img_size=64, multimask='stability')
    logits = torch.full((2, 4, 8, 8), -5.0)
    logits[0, 0, :4] = 5.0      # token 0 stable (no pixel within +-0.05)
    logits[1, 0, :4] = 0.0      # token 0 unstable: |z > 0.05| / |z > -0.05| = 0
    iou = torch.tensor([[0.1, 0.2, 0.9, 0.3], [0.1, 0.8, 0.2, 0.3]])
    vm.eval()
    _, s = vm.select(logits, iou)
    assert s.tolist() == pytest.approx([0.1, 0.8])
    vm.train()  # training: always token 0
    assert vm.select(logits, iou)[1].tolist() == pytest.approx([0.1, 0.1])
    vm.multimask = 'best_iou'
    assert vm.select(logits, iou)[1].tolist() == pytest.approx([0.9, 0.8])
    vm.multimask = 'single'
    assert vm.select(logits, iou)[1].tolist() == pytest.approx([0.1, 0.1])
    with pytest.raises(ValueError, match="multimask must be one of"):
        EVFVisualSAM('tiny', img_size=64, multimask='best')


# ------------------------------------------------------------------------ loading
@pytest.fixture(scope='module')
def released(model, tmp_path_factory):
    """The model in the released layout: fp16 pytorch_model.bin, mixed-dtype model.safetensors."""
    from safetensors.torch import save_file
    folder = tmp_path_factory.mktemp('evf_release')
    state = evf_layout(model)
    assert all(v.dtype == torch.float16 for v in state.values())
    torch.save(state, folder / 'pytorch_model.bin')
    mixed = {k: (v.float() if k.startswith(('mm_extractor.', 'text_hidden_fcs.')) else v)
             for k, v in state.items()}
    save_file(mixed, str(folder / 'model.safetensors'))
    return folder, state


def test_visual_keys_are_the_official_sam_names(released):
    _, state = released
    visual = {k[len('visual_model.'):] for k in state if k.startswith('visual_model.')}
    assert visual == set(build_reference_sam(64).state_dict())
    assert {k.split('.')[0] for k in state} == {'visual_model', 'mm_extractor', 'text_hidden_fcs'}
    assert not any('output_projection' in k or 'relative_position' in k for k in state)


@pytest.mark.parametrize('name', ['pytorch_model.bin', 'model.safetensors'])
@torch.no_grad()
def test_release_layout_loads_exactly_with_the_same_outputs(spm_file, model, released, name):
    folder, state = released
    loaded = build(tiny_cfg(spm_file, checkpoint=str(folder / name)), seed=1)
    own = loaded.state_dict()
    assert all(v.dtype == torch.float32 for v in own.values())
    for k, v in evf_layout(loaded, torch.float32).items():  # every tensor came from the file
        torch.testing.assert_close(v, state[k].float(), atol=0, rtol=0)
    # The source model rounded to fp16 gives the same outputs as the loaded one.
    src = build(tiny_cfg(spm_file), seed=0)
    src.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    img = image(64, 40, seed=6)
    a = loaded.predict_expressions(img, WORDS[:3])
    b = src.predict_expressions(img, WORDS[:3])
    np.testing.assert_array_equal(a['masks'], b['masks'])
    np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-6)


def test_bad_keys_and_the_other_variant_are_named(spm_file, model, released, tmp_path):
    _, state = released
    target = build(tiny_cfg(spm_file), seed=2)

    def load(sd):
        load_evf_checkpoint(target, 'ckpt.bin', state=sd)

    renamed = dict(state)
    renamed['text_hidden_fcs.0.3.weight'] = renamed.pop('text_hidden_fcs.0.2.weight')
    with pytest.raises(ValueError, match=r"key 'text_hidden_fcs\.0\.3\.weight' has no counterpart"):
        load(renamed)
    reshaped = dict(state)
    key = 'mm_extractor.beit3.encoder.embed_positions.B.weight'
    reshaped[key] = torch.zeros(30, 32, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"embed_positions\.B\.weight' has shape \(30, 32\) in the file "
                                         r"but \(40, 32\)"):
        load(reshaped)
    reshaped = dict(state)
    reshaped['visual_model.mask_decoder.iou_token.weight'] = torch.zeros(1, 128, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"'visual_model.mask_decoder.iou_token.weight' has shape "
                                         r"\(1, 128\) in the file but \(1, 256\)"):
        load(reshaped)
    missing = {k: v for k, v in state.items() if k != 'visual_model.image_encoder.neck.1.bias'}
    with pytest.raises(ValueError, match=r"lacks 1 key\(s\) of visual_model, first "
                                         r"'visual_model.image_encoder.neck.1.bias'"):
        load(missing)
    with pytest.raises(ValueError, match=r"key 'lm_head.weight' belongs to no EVF-SAM part"):
        load(dict(state, **{'lm_head.weight': torch.zeros(1)}))
    sam2 = {k: v for k, v in state.items() if not k.startswith('visual_model.')}
    sam2['visual_model.image_encoder.trunk.patch_embed.proj.weight'] = torch.zeros(144, 3, 7, 7)
    sam2['visual_model.sam_mask_decoder.iou_token.weight'] = torch.zeros(1, 256)
    with pytest.raises(ValueError, match=r'is an EVF-SAM2 checkpoint \(SAM-2 visual keys.*EVFVisualSAM '
                                         r'\(SAM-1'):
        load(sam2)
    # the tools print these as one line: InputError
    from mmsamptx.apis.errors import InputError
    with pytest.raises(InputError):
        load(sam2)


def test_download_destination_and_offline_message(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = 'https://huggingface.co/YxZhang/evf-sam/resolve/main/pytorch_model.bin'
    dst = evf_hub_path(url)
    assert dst == osp.join(str(tmp_path), 'hub', 'checkpoints', 'YxZhang--evf-sam', 'pytorch_model.bin')
    assert evf_hub_path(url.replace('evf-sam/', 'evf-sam-multitask/')) != dst
    from mmsamptx.models.utils.evf_checkpoint import read_evf_state_dict
    bad = 'http://127.0.0.1:9/YxZhang/evf-sam/resolve/main/pytorch_model.bin'
    with pytest.raises(RuntimeError) as e:
        read_evf_state_dict(bad)
    assert bad in str(e.value) and evf_hub_path(bad) in str(e.value)


def test_bad_input_is_named(spm_file, model):
    img = image()
    with pytest.raises(ValueError, match=r'expression 1 is empty'):
        model.predict_expressions(img, ['the red square', '  '])
    with pytest.raises(ValueError, match=r"expression 0 is empty \(''\)"):
        model.predict_expressions(img, [''])
    long = 'the red square ' * 12
    assert model.fusion_encoder.max_text_len == 38
    with pytest.raises(ValueError, match=r"more than the 38 that BEiT-3's position table holds"):
        model.predict_expressions(img, ['the red square', long])
    with pytest.raises(ValueError, match=r'RGB uint8 array \(H, W, 3\)'):
        model.predict_expressions(img[..., 0], ['the red square'])
    missing = str(osp.join(osp.dirname(spm_file), 'nope', 'sentencepiece.bpe.model'))
    no_tok = MODELS.build(tiny_cfg(missing))  # building reads no file
    with pytest.raises(FileNotFoundError, match=r'tokenizer file not found.*nope/sentencepiece.bpe.model'):
        no_tok.predict_expressions(img, ['the red square'])
    with pytest.raises(FileNotFoundError, match='EVF-SAM checkpoint not found'):
        MODELS.build(tiny_cfg(spm_file, checkpoint='/nonexistent/pytorch_model.bin')).init_weights()


# ------------------------------------------------------------------------ counts (§7, §8)
def test_parameter_counts_on_meta():
    from mmengine.config import Config

    def counts(cfg):
        with torch.device('meta'):
            m = MODELS.build(cfg.model)
        trainable = sum(p.numel() for p in m.parameters() if p.requires_grad)
        return m, sum(p.numel() for p in m.parameters()), trainable

    cfg = Config.fromfile('configs/evf_sam/evf-sam_vit-h_refcoco-mix.py')
    m, total, trainable = counts(cfg)
    assert sum(p.numel() for p in m.projector.parameters()) == 1_312_000
    assert sum(p.numel() for p in m.fusion_encoder.parameters()) == 672_702_464
    assert sum(p.numel() for p in m.visual_model.parameters()) == 641_090_608
    assert total == 1_315_105_072
    # SAM's encoder frozen; decoder 4,058,340 + no_mask_embed 256 + BEiT-3 + projector train
    assert trainable == 678_073_060 == 4_058_340 + 256 + 672_702_464 + 1_312_000
    lora = Config.fromfile('configs/evf_sam/evf-sam-lora_vit-h_refcoco-mix.py')
    m, total, trainable = counts(lora)
    lora_params = 24 * 2 * 4 * 16 * (1024 + 1024)
    assert lora_params == 6_291_456
    assert total == 1_315_105_072 + lora_params
    assert trainable == lora_params + 1_312_000 + 4_058_340 + 256


@torch.no_grad()
def test_release_layout_loads_into_a_lora_model(spm_file, released):
    """The parameter-efficient variant starts from a release: base weights through peft's
    ``base_layer`` names, LoRA tensors not in the file (B = 0: the release's outputs)."""
    folder, state = released
    cfg = tiny_cfg(spm_file, checkpoint=str(folder / 'pytorch_model.bin'))
    cfg['fusion_encoder'] = dict(cfg['fusion_encoder'],
                                 lora_cfg=dict(r=2, target_modules=('q_proj', 'v_proj')))
    torch.manual_seed(3)
    lora = MODELS.build(cfg)
    lora.init_weights()
    own = lora.state_dict()
    key = 'fusion_encoder.encoder.layers.0.self_attn.q_proj.A.base_layer.weight'
    released_key = 'mm_extractor.beit3.encoder.layers.0.self_attn.q_proj.A.weight'
    torch.testing.assert_close(own[key], state[released_key].float())
    trainable = {n for n, p in lora.fusion_encoder.named_parameters() if p.requires_grad}
    assert trainable and all('lora_' in n for n in trainable)
    plain = build(tiny_cfg(spm_file, checkpoint=str(folder / 'pytorch_model.bin')), seed=4)
    img = image(64, 40, seed=7)
    np.testing.assert_allclose(lora.eval().predict_expressions(img, WORDS[:2])['scores'],
                               plain.predict_expressions(img, WORDS[:2])['scores'], atol=1e-5)
