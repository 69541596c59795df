"""ONNX export (tools/export_onnx.py): onnxruntime runs both graphs and gives the model's own
outputs within 1e-4 on the tiny arch, for other batch sizes than the export's."""
import importlib.util
import json
import os.path as osp

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

from mmsamptx.apis.adapter_checkpoint import build_bare_model
from mmsamptx.apis.onnx_export import (DECODER_INPUTS, OnnxPromptableDecoder, _write_onnx,
                                       load_model_for_export)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs/demo/samptx_demo.py')
TOL = 1e-4


def load_tool():
    spec = importlib.util.spec_from_file_location('mmsamptx_tool_export_onnx',
                                                  osp.join(REPO, 'tools/export_onnx.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def session(path):
    return ort.InferenceSession(path, providers=['CPUExecutionProvider'])


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """Tiny SAM-PTx (text adapters in every block) with 'trained' weights, exported by the tool:
    (out_dir, model, the tool's stdout)."""
    tmp = tmp_path_factory.mktemp('onnx')
    torch.manual_seed(0)
    model = build_bare_model(Config.fromfile(CONFIG))
    model.init_weights()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    full = str(tmp / 'iter_300.pth')
    torch.save(dict(meta=dict(cfg=Config.fromfile(CONFIG).pretty_text), state_dict=model.state_dict()),
               full)
    out_dir = str(tmp / 'onnx')
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert load_tool().main([CONFIG, full, '--out-dir', out_dir]) == 0
    return out_dir, model.eval(), buf.getvalue()


def test_tool_reports_errors_within_tolerance(exported):
    out_dir, _, stdout = exported
    line = next(s for s in stdout.splitlines() if s.startswith('onnxruntime vs torch'))
    errors = [float(v.rstrip(',')) for v in line.split()[-3::2]]
    assert len(errors) == 2 and max(errors) <= TOL, line
    meta = json.load(open(osp.join(out_dir, 'model.json')))
    assert meta['image_size'] == 128 and meta['text_dims'] == 64
    assert meta['class_names'] == ['wall', 'plate', 'tray']
    assert meta['encoder']['inputs'] == ['image', 'text_embeds']
    assert meta['decoder']['inputs'] == list(DECODER_INPUTS)  # the head reads no text


def test_graphs_equal_the_models_outputs(exported):
    """Encoder: 3 classes at once (exported with 2); decoder: SAM's convention (padding point,
    no mask) against the head's forward and the segmentor's resizing to the original size."""
    out_dir, model, _ = exported
    g = torch.Generator().manual_seed(3)
    image = torch.randn(1, 3, 128, 128, generator=g)
    text = torch.from_numpy(np.load(osp.join(out_dir, 'class_embeddings.npy')))
    with torch.no_grad():
        assert torch.allclose(text, model.class_embeddings())
        index = torch.zeros(3, dtype=torch.long)
        emb = model.encode_samples(image, index, text)
        points = torch.rand(3, 2, 2, generator=g) * 127
        labels = torch.tensor([[1, 0]] * 3)
        logits, iou = model.decode_head(emb, points, labels, None, None)
    got_emb = session(osp.join(out_dir, 'encoder.onnx')).run(
        None, dict(image=image.numpy(), text_embeds=text.numpy()))[0]
    assert np.abs(got_emb - emb.numpy()).max() <= TOL
    coords = torch.cat([points, torch.zeros(3, 1, 2)], 1).numpy()   # + SAM's padding point
    point_labels = np.concatenate([labels.numpy(), -np.ones((3, 1))], 1).astype(np.float32)
    orig = (97, 130)  # H, W of an original image whose long side was resized to 128
    masks, scores, low_res = session(osp.join(out_dir, 'decoder.onnx')).run(None, dict(
        image_embeddings=got_emb, point_coords=coords, point_labels=point_labels,
        mask_input=np.zeros((3, 1, 32, 32), np.float32), has_mask_input=np.zeros(1, np.float32),
        orig_im_size=np.array(orig, np.float32)))
    assert np.abs(low_res - logits.numpy()).max() <= TOL
    assert np.abs(scores - iou.numpy()).max() <= TOL
    # the segmentor's resizing: to the input size, the padding cropped (130 -> 128: 97 -> 96), to H x W
    expected = F.interpolate(logits, size=(128, 128), mode='bilinear', align_corners=False)
    expected = F.interpolate(expected[..., :96, :128], size=orig, mode='bilinear', align_corners=False)
    assert masks.shape == (3, 1, *orig) and np.abs(masks - expected.numpy()).max() <= TOL


def test_decoder_with_text_input(tmp_path):
    """A head that reads text (cross-attention from the decoder's tokens, 3 masks): text_embeds is a
    decoder input, and the mask prompt is used (has_mask_input = 1)."""
    cfg = Config.fromfile(osp.join(REPO, 'configs/demo/decoder-only_demo.py'))
    cfg.model.text_encoder = dict(type='OpenCLIPTextEncoder', model_name='mmsamptx-tiny-clip',
                                  templates=('{}',))
    cfg.model.decode_head.update(text_injection='decoder_cross_attn', text_dims=64,
                                 multimask_output=True)
    torch.manual_seed(0)
    model, _ = load_model_for_export(cfg, None)
    decoder = OnnxPromptableDecoder(model).eval()
    g = torch.Generator().manual_seed(0)

    def inputs(b):
        return dict(image_embeddings=torch.randn(1, 256, 8, 8, generator=g),
                    point_coords=torch.rand(b, 2, 2, generator=g) * 127,
                    point_labels=torch.tensor([[1.0, -1.0]] * b),
                    mask_input=torch.randn(b, 1, 32, 32, generator=g), has_mask_input=torch.ones(1),
                    orig_im_size=torch.tensor([128.0, 100.0]),
                    text_embeds=F.normalize(torch.randn(b, 64, generator=g), dim=-1))
    names = list(DECODER_INPUTS) + ['text_embeds']
    path = str(tmp_path / 'decoder.onnx')
    with torch.no_grad():
        _write_onnx(decoder, tuple(inputs(2).values()), path, names, ['masks', 'iou', 'low_res'],
                    dict(point_coords={0: 'b'}, point_labels={0: 'b'}, mask_input={0: 'b'},
                         text_embeds={0: 'b'}))
        feeds = inputs(3)
        low_res, iou = model.decode_head(feeds['image_embeddings'], feeds['point_coords'][:, :1],
                                         torch.ones(3, 1, dtype=torch.long), None,
                                         feeds['text_embeds'], masks=feeds['mask_input'])
    got = session(path).run(None, {k: v.numpy() for k, v in feeds.items()})
    assert got[2].shape == (3, 3, 32, 32) and got[0].shape == (3, 3, 128, 100)
    assert np.abs(got[2] - low_res.numpy()).max() <= TOL
    assert np.abs(got[1] - iou.numpy()).max() <= TOL


def test_user_errors_are_one_line(tmp_path, capsys):
    tool = load_tool()
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(b'PK\x03\x04 torn')
    other = tmp_path / 'other.pth'
    torch.save(dict(state_dict={'backbone.pos_embed': torch.zeros(1)}), other)
    for argv, needle in (([CONFIG, str(bad)], 'bad.pth cannot be read'),
                         ([CONFIG, str(other)], "'backbone.pos_embed'"),
                         ([str(tmp_path / 'nope.py'), 'none'], 'config file not found'),
                         (['samptx_ade20k_1-6', 'none'], 'unknown model'),
                         (['cgs_voc_1-16', 'none'], 'not built'),
                         (['evf-sam_tiny_referring-shapes', 'none'], "not model.type='EVFSAM'")):
        assert tool.main(argv + ['--out-dir', str(tmp_path / 'o')]) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and err.count('\n') == 1 and needle in err, err
