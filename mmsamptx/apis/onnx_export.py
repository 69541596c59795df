"""ONNX export of a class-prompted SAM: the adapted image encoder and the promptable decoder.

Two graphs, as SAM deploys (its ``scripts/export_onnx_model.py`` exports the
decoder; the encoder runs once per image):

``encoder.onnx`` (:class:`OnnxImageEncoder`)
    ``image`` (1, 3, S, S): the RGB image resized so its long side is S,
    normalised with the config's mean / std and zero-padded to S x S (what the
    data preprocessor feeds the model); ``text_embeds`` (K, D), only for an
    encoder whose adapters read text: one CLIP text embedding per class, so any
    class works, K free. Output ``image_embeddings`` (K or 1, 256, S/16, S/16).

``decoder.onnx`` (:class:`OnnxPromptableDecoder`), SAM's ONNX convention
(``segment_anything.utils.onnx.SamOnnxModel``'s inputs and outputs)
    ``image_embeddings`` (1 or B, 256, h, w); ``point_coords`` (B, N, 2) xy in
    the resized S-frame; ``point_labels`` (B, N): 1 positive, 0 negative, 2 / 3
    a box's top-left / bottom-right corner, -1 padding (add one padding point
    (0, 0) with label -1 when there is no box, as SAM's ONNX model expects);
    ``mask_input`` (B, 1, 4h, 4w) and ``has_mask_input`` (1,): a dense mask
    prompt and whether to use it; ``orig_im_size`` (2,) float, the original
    (H, W); plus ``text_embeds`` (B, D) where the head reads text
    (``text_injection``). Outputs ``masks`` (B, M, H, W) logits at the
    original size, ``iou_predictions`` (B, M) and ``low_res_masks`` (B, M, 4h, 4w);
    M = 3 with ``multimask_output``, else 1.

``model.json`` records S, mean, std, the text width, the class names and the
inputs of each graph; ``class_embeddings.npy`` (C, D) holds the text embedding of
every class of the config's vocabulary, for use without CLIP.

Both graphs run in float32 (a config's bf16 autocast is turned off for the
export) and are written with the TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``), the one SAM's own script uses: it records the decoder's
output size as a function of the ``orig_im_size`` values, and exports in a
fraction of the time of the torch.export-based one on this project's models.
The encoder's attention is exported in its explicit form (``RelPosAttention``
with ``fused=False``: ``softmax(q k^T * scale + bias) v`` with SAM's decomposed
relative-position bias, the library's reference, tested equal to the fused
form). The fused form pads its head dims to a multiple of 8 with a size computed
by floor division of a traced shape, which the TorchScript exporter writes as
ONNX's integer ``Div`` (truncating): at ViT-B (64 + 28 dims in windowed blocks)
that gave a negative pad in onnxruntime. The relative-position tables are
gathered with indices fixed by S.
"""
import functools
import json
import os
import os.path as osp
import warnings
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .adapter_checkpoint import _resolve_config, build_bare_model

ONNX_OPSET = 17
DECODER_INPUTS = ('image_embeddings', 'point_coords', 'point_labels', 'mask_input',
                  'has_mask_input', 'orig_im_size')
DECODER_OUTPUTS = ('masks', 'iou_predictions', 'low_res_masks')

__all__ = ['OnnxImageEncoder', 'OnnxPromptableDecoder', 'export_onnx', 'load_model_for_export']


class OnnxImageEncoder(nn.Module):
    """The segmentor's image encoder (SAM trunk, adapters, prompt tokens, neck) for one image.

    ``forward(image (1, 3, S, S), text_embeds (K, D) or None)`` ->
    ``(K or 1, 256, S/16, S/16)``: the embedding of the image for each of K
    class texts, exactly as :meth:`ClassPromptedSAM.encode_samples` computes it.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    @property
    def uses_text(self) -> bool:
        return self.model.backbone.is_conditioned

    def forward(self, image: torch.Tensor, text_embeds: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.uses_text:
            return self.model.extract_feat(image)[0]
        index = torch.zeros_like(text_embeds[:, 0], dtype=torch.long)  # every class: image 0
        return self.model.encode_samples(image, index, text_embeds)


class OnnxPromptableDecoder(nn.Module):
    """The head's prompt encoder and mask decoder in SAM's ONNX convention (see the module doc).

    The sparse tokens are SAM's point / box-corner tokens, built from
    ``point_labels`` as SAM's prompt encoder builds them, followed by the head's
    own extra tokens (text token, learned prompt tokens) in the head's order.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.head = model.decode_head
        self.image_size = self.head.image_size

    @property
    def uses_text(self) -> bool:
        return self.head.uses_text

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, N, 2) S-frame xy and (B, N) labels -> (B, N, 256) tokens, as SAM's prompt encoder."""
        pe = self.head.prompt_encoder
        coords = (coords + 0.5) / self.image_size  # pixel centres, normalised to [0, 1]
        emb = pe.pe_layer._pe_encoding(coords)
        labels = labels[..., None]
        emb = emb * (labels != -1) + pe.not_a_point_embed.weight * (labels == -1)
        for i, point_embedding in enumerate(pe.point_embeddings):
            emb = emb + point_embedding.weight * (labels == i)
        return emb

    def embed_mask(self, mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> torch.Tensor:
        """(B, 1, 4h, 4w) mask prompt -> (B, 256, h, w); the no-mask embedding when not used."""
        pe = self.head.prompt_encoder
        return pe.mask_downscaling(mask_input) * has_mask_input + \
            (1 - has_mask_input) * pe.no_mask_embed.weight.reshape(1, -1, 1, 1)

    def upscale(self, low_res: torch.Tensor, orig_im_size: torch.Tensor) -> torch.Tensor:
        """(B, M, 4h, 4w) logits -> (B, M, H, W): to S x S, the padding cropped, to (H, W)."""
        s = self.image_size
        masks = F.interpolate(low_res, size=(s, s), mode='bilinear', align_corners=False)
        # the resized image's size: long side S, each side rounded as mmcv.imrescale rounds
        scale = s / orig_im_size.max()
        resized = (orig_im_size * scale + 0.5).to(torch.int64)
        masks = masks[..., :resized[0], :resized[1]]
        size = orig_im_size.to(torch.int64)
        return F.interpolate(masks, size=(size[0], size[1]), mode='bilinear', align_corners=False)

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor,
                point_labels: torch.Tensor, mask_input: torch.Tensor,
                has_mask_input: torch.Tensor, orig_im_size: torch.Tensor,
                text_embeds: Optional[torch.Tensor] = None):
        head = self.head
        batch = point_coords.shape[0]
        sparse = self.embed_points(point_coords, point_labels)
        # the head's own tokens after SAM's (text token, prompt tokens), by the head's own code
        extra, _ = head.embed_prompts(batch, None, None, None, text_embeds, None)
        sparse = torch.cat([sparse, extra.to(sparse.dtype)], dim=1)
        dense = self.embed_mask(mask_input, has_mask_input)
        extra_token = mixer = None
        if head.text_injection == 'decoder':
            extra_token = head.text_proj(text_embeds)
        elif head.text_injection == 'decoder_cross_attn':
            mixer = functools.partial(head.text_cross_attn, text=text_embeds)  # as the head binds it
        low_res, iou = head.mask_decoder(image_embeddings, head.prompt_encoder.get_dense_pe(),
                                         sparse, dense, head.multimask_output,
                                         extra_output_token=extra_token, token_mixer=mixer)
        return self.upscale(low_res, orig_im_size), iou, low_res


# ------------------------------------------------------------------------ loading
def load_model_for_export(config, checkpoint: Optional[str]):
    """(model in eval mode, float32, explicit attention, its Config) from a config and a checkpoint.

    ``checkpoint``: a full checkpoint (loaded strictly) or an adapter-only file
    (onto the base weights of ``init_weights()``), through
    :func:`mmsamptx.apis.load_trained_checkpoint`; None / ``'none'`` for the
    model's own ``init_weights()``.

    Raises:
        ValueError: one line naming the file / key at fault.
    """
    cfg, _, name = _resolve_config(config, {}, 'the model')
    if cfg.model.get('type') != 'ClassPromptedSAM':
        raise ValueError(f'{name}: ONNX export is built for ClassPromptedSAM models (SAM-PTx, '
                         f"PTSAM and the baselines), not model.type={cfg.model.get('type')!r}")
    if cfg.model.get('guide') is not None:
        raise ValueError(f'{name}: ONNX export of a model with a CLIP guide (CLIP-Guided SAM) is not '
                         'built: its adapters read CLIP image tokens, not only a text embedding')
    model = build_bare_model(cfg)
    if checkpoint is None or checkpoint.lower() == 'none':
        model.init_weights()
    else:
        from .checkpoint import load_trained_checkpoint
        load_trained_checkpoint(model, checkpoint, config_name=name)
    # float32 graphs: the bf16 autocast options are for training and torch inference
    model.backbone.autocast_dtype = None
    model.decode_head.autocast_dtype = None
    from ..models.utils.rel_pos_attention import RelPosAttention
    for module in model.modules():
        if isinstance(module, RelPosAttention):
            module.fused = False  # the explicit reference maths (see the module docstring)
    return model.float().eval(), cfg


# ------------------------------------------------------------------------- export
def _example_inputs(model, num_prompts: int = 2, num_points: int = 3, seed: int = 0):
    """Encoder and decoder inputs of the right shapes (random, reproducible), as dicts."""
    g = torch.Generator().manual_seed(seed)
    head = model.decode_head
    s = head.image_size
    grid = head.prompt_encoder.image_embedding_size
    text_dims = None
    enc = dict(image=torch.randn(1, 3, s, s, generator=g))
    if model.uses_text:
        text_dims = model.class_embeddings().shape[1]
        enc['text_embeds'] = F.normalize(torch.randn(num_prompts, text_dims, generator=g), dim=-1)
    coords = torch.rand(num_prompts, num_points, 2, generator=g) * (s - 1)
    labels = torch.tensor([[1] + [0] * (num_points - 2) + [-1]] * num_prompts, dtype=torch.float32)
    coords[:, -1] = 0  # the padding point
    dec = dict(point_coords=coords, point_labels=labels,
               mask_input=torch.randn(num_prompts, 1, 4 * grid[0], 4 * grid[1], generator=g),
               has_mask_input=torch.ones(1), orig_im_size=torch.tensor([0.75 * s + 3, s + 5.0]))
    return enc, dec, text_dims


def _export(module, args, path, input_names, output_names, dynamic_axes):
    with warnings.catch_warnings():
        # the TorchScript exporter warns that it is not the default exporter any more, and
        # about the input checks it traces as constants (shapes it does not change)
        warnings.simplefilter('ignore')
        torch.onnx.export(module, args, path, input_names=list(input_names),
                          output_names=list(output_names), dynamic_axes=dynamic_axes,
                          opset_version=ONNX_OPSET, dynamo=False, do_constant_folding=True)


def _write_onnx(module, args, path, input_names, output_names, dynamic_axes):
    """Export to a temporary name beside ``path``, check the graph, then rename (atomic)."""
    import onnx
    tmp = osp.join(osp.dirname(path), '.' + osp.basename(path) + '.tmp')
    try:
        _export(module, args, tmp, input_names, output_names, dynamic_axes)
        onnx.checker.check_model(tmp)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def _max_abs_error(session, feeds: dict, expected) -> float:
    got = session.run(None, {k: v.numpy() for k, v in feeds.items()})
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))


def export_onnx(config, checkpoint: Optional[str], out_dir: str, verify: bool = True) -> dict:
    """Write ``encoder.onnx``, ``decoder.onnx``, ``model.json`` (and ``class_embeddings.npy``).

    Args:
        config: the model's config (path or ``Config``).
        checkpoint: full or adapter-only checkpoint, or None / ``'none'``.
        out_dir: the folder to write into.
        verify: run both graphs with onnxruntime on example inputs (3 prompts,
            other sizes than the export's) and compare with torch.

    Returns:
        ``dict(encoder, decoder, meta, encoder_max_abs_error, decoder_max_abs_error)``
        (errors only with ``verify``).
    """
    model, cfg = load_model_for_export(config, checkpoint)
    os.makedirs(out_dir, exist_ok=True)
    encoder, decoder = OnnxImageEncoder(model).eval(), OnnxPromptableDecoder(model).eval()
    enc_in, dec_in, text_dims = _example_inputs(model, num_prompts=2)
    result = dict(encoder=osp.join(out_dir, 'encoder.onnx'), decoder=osp.join(out_dir, 'decoder.onnx'),
                  meta=osp.join(out_dir, 'model.json'))
    enc_names = ['image'] + (['text_embeds'] if encoder.uses_text else [])
    dec_names = list(DECODER_INPUTS) + (['text_embeds'] if decoder.uses_text else [])
    batch = 'classes' if encoder.uses_text else None
    from mmengine.logging import print_log
    with torch.no_grad():
        emb = encoder(*[enc_in[k] for k in enc_names])
        print_log(f"exporting the image encoder to {result['encoder']} ...", logger='current')
        _write_onnx(encoder, tuple(enc_in[k] for k in enc_names), result['encoder'], enc_names,
                    ['image_embeddings'],
                    {'text_embeds': {0: 'classes'}, 'image_embeddings': {0: 'classes'}} if batch else {})
        dec_feeds = dict(image_embeddings=emb, **dec_in)
        if decoder.uses_text:
            dec_feeds['text_embeds'] = F.normalize(torch.randn(
                len(dec_in['point_coords']), text_dims, generator=torch.Generator().manual_seed(0)),
                dim=-1)
        prompts = {0: 'prompts'}
        print_log(f"exporting the promptable decoder to {result['decoder']} ...", logger='current')
        _write_onnx(decoder, tuple(dec_feeds[k] for k in dec_names), result['decoder'], dec_names,
                    DECODER_OUTPUTS,
                    dict(image_embeddings={0: 'embeddings'}, point_coords={0: 'prompts', 1: 'points'},
                         point_labels={0: 'prompts', 1: 'points'}, mask_input=prompts,
                         text_embeds=prompts, masks={0: 'prompts', 2: 'height', 3: 'width'},
                         iou_predictions=prompts, low_res_masks=prompts))
    pre = cfg.model.get('data_preprocessor') or {}
    meta = dict(
        format='mmsamptx-onnx', image_size=decoder.image_size,
        mean=list(pre.get('mean', [123.675, 116.28, 103.53])),
        std=list(pre.get('std', [58.395, 57.12, 57.375])),
        text_dims=text_dims, multimask_output=bool(decoder.head.multimask_output),
        class_names=list(model.class_names),
        encoder=dict(inputs=enc_names, outputs=['image_embeddings']),
        decoder=dict(inputs=dec_names, outputs=list(DECODER_OUTPUTS)),
        note='image: RGB, long side resized to image_size, (x - mean) / std, zero-padded to '
             'image_size x image_size; point_coords in that resized frame')
    from mmsamptx.utils import atomic_write
    if text_dims is not None:
        with torch.no_grad():
            names = model.class_embeddings().float().cpu().numpy()
        path = osp.join(out_dir, 'class_embeddings.npy')
        with atomic_write(path, 'wb') as f:
            np.save(f, names)
        result['class_embeddings'] = path
    with atomic_write(result['meta'], 'w') as f:
        json.dump(meta, f, indent=1)
    if verify:
        print_log('running both graphs in onnxruntime against torch ...', logger='current')
        result.update(verify_onnx(model, result['encoder'], result['decoder']))
    return result


def verify_onnx(model, encoder_path: str, decoder_path: str, seed: int = 1) -> dict:
    """Max abs difference between onnxruntime and torch on example inputs of other sizes than
    the export's (3 prompts, 4 points)."""
    import onnxruntime as ort
    encoder, decoder = OnnxImageEncoder(model).eval(), OnnxPromptableDecoder(model).eval()
    enc_in, dec_in, text_dims = _example_inputs(model, num_prompts=3, num_points=4, seed=seed)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    enc_s = ort.InferenceSession(encoder_path, options, providers=['CPUExecutionProvider'])
    dec_s = ort.InferenceSession(decoder_path, options, providers=['CPUExecutionProvider'])
    with torch.no_grad():
        enc_feeds = {i.name: enc_in[i.name] for i in enc_s.get_inputs()}
        emb = encoder(**enc_feeds)
        enc_err = _max_abs_error(enc_s, enc_feeds, [emb])
        feeds = dict(image_embeddings=emb, **dec_in)
        if decoder.uses_text:
            g = torch.Generator().manual_seed(seed)
            feeds['text_embeds'] = F.normalize(torch.randn(3, text_dims, generator=g), dim=-1)
        feeds = {i.name: feeds[i.name] for i in dec_s.get_inputs()}
        dec_err = _max_abs_error(dec_s, feeds, decoder(**feeds))
    return dict(encoder_max_abs_error=enc_err, decoder_max_abs_error=dec_err)
