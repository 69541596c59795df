"""The Python API: the README example as written, the masks of tools/test.py's model, inputs, prompts, loading."""
import os.path as osp
import types

import numpy as np
import pytest
import torch
from PIL import Image
from test_apis.demo_models import (DECODER_ONLY, SAMPTX, load_tool, readme_block,
                                   save_demo_checkpoint)

from mmsamptx.apis import CheckpointError, InputError, TextSAM, list_models, load_image
from mmsamptx.demo import make_ambiguous_shapes

IMAGE = 'work_dirs/demo/data/ADEChallengeData2016/images/validation/ADE_val_00000001.jpg'


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """`make demo`'s layout in a temporary folder: data, a SAM-PTx checkpoint where the README
    looks for it, a decoder-only checkpoint, and the SAM-PTx model loaded through the API."""
    root = tmp_path_factory.mktemp('readme')
    data = make_ambiguous_shapes(str(root / 'work_dirs' / 'demo' / 'data'), num_train=0, num_val=2)
    (root / 'work_dirs' / 'demo' / 'samptx').mkdir(parents=True)
    ckpt = save_demo_checkpoint(SAMPTX, str(root / 'work_dirs' / 'demo' / 'samptx' / 'iter_300.pth'))
    dec = save_demo_checkpoint(DECODER_ONLY, str(root / 'decoder-only.pth'))
    model = TextSAM(SAMPTX, checkpoint=ckpt)
    return types.SimpleNamespace(root=root, data=data, ckpt=ckpt, dec=dec, model=model,
                                 image=str(root / IMAGE))


def decoder_outputs(model):
    """Record the decode head's (mask logits, IoU) of every call: returns (list, hook handle)."""
    seen = []
    handle = model.decode_head.register_forward_hook(
        lambda module, args, out: seen.append(tuple(t.detach().clone() for t in out)))
    return seen, handle


def test_readme_example_gives_the_masks_of_the_model_tools_test_builds(demo, monkeypatch):
    monkeypatch.chdir(demo.root)
    namespace = {}
    exec(compile(readme_block(), 'README.md', 'exec'), namespace)  # as written
    pred = namespace['preds'][0]
    assert (demo.root / 'work_dirs' / 'demo' / 'overlay.png').is_file()
    assert pred.labels == ['plate', 'tray'] and pred.masks.shape == (2, 128, 128)
    api = namespace['model']
    api_out, handle = decoder_outputs(api.model)
    again = api.predict(IMAGE, texts=['plate', 'tray'])[0]
    handle.remove()
    assert np.array_equal(again.masks, pred.masks)

    # the model tools/test.py builds: its runner, with the checkpoint loaded by test.py itself
    import mmsamptx.engine as engine
    built = {}
    real_build = engine.build_runner

    def build_runner(cfg):
        runner = built['runner'] = real_build(cfg)
        runner.test = lambda: {}  # the test loop itself is tools/test.py's own tests' business
        return runner

    monkeypatch.setattr(engine, 'build_runner', build_runner)
    assert load_tool('test').main([
        SAMPTX, demo.ckpt, '--work-dir', str(demo.root / 'test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={demo.data}', 'model.test_cfg.mode=text',
        'model.test_cfg.target_classes=[1,2]']) == 0
    runner = built['runner']
    model = runner.model.eval()
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import DATASETS
    dataset = DATASETS.build(runner.cfg.test_dataloader.dataset)
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)['img_path'].endswith('ADE_val_00000001.jpg'))
    batch = model.data_preprocessor(pseudo_collate([dataset[index]]), False)
    test_out, handle = decoder_outputs(model)
    with torch.no_grad():
        sample = model.predict(batch['inputs'], batch['data_samples'])[0]
    handle.remove()
    # the same decoder logits and IoUs (one class chunk each) ...
    assert len(api_out) == len(test_out) == 1
    for a, b in zip(api_out[0], test_out[0]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # ... and the same assembled map at the image size: where the API's map names a class,
    # tools/test.py's model (mode 'text') chose it too; elsewhere that choice's mask is empty
    label = sample.pred_sem_seg.data[0].numpy()
    class_id = np.array([0] + [model.class_names.index(n) for n in pred.labels])
    won = pred.semantic > 0
    assert won.any()
    assert np.array_equal(class_id[pred.semantic[won]], label[won])
    idx = {c: k for k, c in enumerate(class_id[1:])}
    chosen = np.vectorize(idx.get)(label)
    assert not np.take_along_axis(pred.masks, chosen[None], 0)[0][~won].any()


def test_paths_rgb_arrays_and_pil_images_give_the_same_masks(demo):
    rgb = load_image(demo.image)
    preds = demo.model.predict([demo.image, rgb, Image.fromarray(rgb)], texts=['plate'])
    assert len(preds) == 3
    for p in preds[1:]:
        np.testing.assert_array_equal(p.logits, preds[0].logits)
        np.testing.assert_array_equal(p.image, rgb)
    # arrays are RGB: the channel-swapped picture is another input, no silent BGR swap
    swapped = demo.model.predict(np.ascontiguousarray(rgb[..., ::-1]), texts=['plate'])[0]
    assert not np.allclose(swapped.logits[0], preds[0].logits[0], atol=1e-4)


def test_several_names_run_as_one_batch_and_equal_one_at_a_time(demo):
    names = ['plate', 'tray', 'wall', 'cat']  # 'cat' is outside the vocabulary: encoded now
    together = demo.model.predict(demo.image, texts=names)[0]
    assert together.labels == names and together.masks.shape == (4, 128, 128)
    assert together.scores.shape == (4,) and together.semantic.dtype == np.int64
    for k, name in ((1, 'tray'), (3, 'cat')):
        alone = demo.model.predict(demo.image, texts=name)[0]
        np.testing.assert_allclose(alone.logits[0], together.logits[k], atol=1e-5, rtol=0)
    # the semantic map only names pixels inside the winning mask
    for k in range(1, 5):
        assert together.masks[k - 1][together.semantic == k].all()
    overlay = together.overlay()
    assert overlay.dtype == np.uint8 and overlay.shape[0] == 128 and overlay.shape[1] > 128
    from mmsamptx.apis.prediction import colour_of
    legend = overlay[:, 128:].reshape(-1, 3)
    for k in range(4):
        assert (legend == colour_of(k)).all(1).any()  # every label's swatch is in the legend


def test_points_and_boxes(demo):
    m = demo.model
    assert m.modes == ('text', 'points', 'boxes') and m.vocabulary is None
    shared = m.predict(demo.image, texts=['plate', 'tray'], points=[(40, 60), (90, 30)],
                       point_labels=[1, 0])[0]
    per_text = m.predict(demo.image, texts=['plate', 'tray'],
                         points=[[(40, 60), (90, 30)], [(40, 60)]],
                         point_labels=[[1, 0], [1]])[0]
    np.testing.assert_allclose(per_text.logits[0], shared.logits[0], atol=1e-5, rtol=0)
    assert not np.allclose(per_text.logits[1], shared.logits[1], atol=1e-4)
    assert shared.points == [(40, 60), (90, 30)] * 2
    boxed = m.predict(demo.image, texts=['plate'], boxes=[(10, 10, 100, 90)])[0]
    assert boxed.masks.shape == (1, 128, 128) and boxed.boxes == [(10, 10, 100, 90)]
    with pytest.raises(InputError, match=r'point \(300, 5\) lies outside the 128x128 image'):
        m.predict(demo.image, texts=['plate'], points=[(300, 5)])
    with pytest.raises(InputError, match='pixels of one image'):
        m.predict([demo.image, demo.image], texts=['plate'], points=[(3, 5)])
    with pytest.raises(InputError, match='is prompted by class names: pass texts'):
        m.predict(demo.image, points=[(3, 5)])
    with pytest.raises(InputError, match='not expressions'):
        m.predict(demo.image, expressions=['the plate on the left'])
    with pytest.raises(InputError, match='3 boxes for 2 texts'):
        m.predict(demo.image, texts=['plate', 'tray'], boxes=[(0, 0, 5, 5)] * 3)


def test_a_model_without_text_takes_prompts_and_a_closed_vocabulary(demo):
    m = TextSAM(DECODER_ONLY, checkpoint=demo.dec)
    assert m.modes == ('points', 'boxes') and m.vocabulary == ['wall', 'plate', 'tray']
    p = m.predict(demo.image, boxes=[(10, 10, 60, 60), (50, 40, 120, 110)])[0]
    assert p.labels == ['box 1', 'box 2'] and p.masks.shape == (2, 128, 128)
    named = m.predict(demo.image, texts=['plate'], points=[(40, 60)])[0]
    assert named.labels == ['plate']
    with pytest.raises(InputError, match="unknown class 'cat'.*closed vocabulary of 3 classes "
                                         r'\(wall, plate, tray\)'):
        m.predict(demo.image, texts=['cat'], points=[(40, 60)])
    with pytest.raises(InputError, match='reads no text: give points or boxes'):
        m.predict(demo.image, texts=['plate'])


def test_loading_is_strict_and_names_the_checkpoints_config(demo, tmp_path, tiny_sam_checkpoint):
    with pytest.raises(CheckpointError) as e:
        TextSAM(SAMPTX, checkpoint=demo.dec)
    msg = str(e.value)
    assert '\n' not in msg
    assert f'checkpoint {demo.dec} does not fit samptx_demo: 70 of the model\'s keys are missing ' \
           '(first: backbone.blocks.0.adapter.down.weight' in msg
    assert "it seems to be from config 'decoder-only_demo'" in msg and '--allow-partial' in msg
    with pytest.raises(CheckpointError, match='keys are not in the model'):
        TextSAM(DECODER_ONLY, checkpoint=demo.ckpt)
    with pytest.raises(CheckpointError, match='it seems to be an official SAM checkpoint'):
        TextSAM(DECODER_ONLY, checkpoint=tiny_sam_checkpoint[0])
    from mmengine.logging import MMLogger
    records = []
    logger = MMLogger.get_current_instance()
    logger.addFilter(lambda r: records.append(r.getMessage()) or True)
    partial = TextSAM(SAMPTX, checkpoint=demo.dec, allow_partial=True)
    assert any('partial load of' in r and '70 missing keys' in r for r in records)
    dec_state = torch.load(demo.dec)['state_dict']
    own = partial.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in dec_state.items())
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(open(demo.ckpt, 'rb').read()[:4096])
    with pytest.raises(CheckpointError, match=f'checkpoint file {truncated} cannot be read: it is '
                                              'truncated'):
        TextSAM(SAMPTX, checkpoint=str(truncated))


def test_model_zoo_names():
    names = list_models()
    assert 'samptx_ade20k_1-64' in names and 'samptx_demo' in names
    # one stem in two folders is named by its folder
    assert 'demo/parallel-adapter_demo' in names and 'ptsam/demo/parallel-adapter_demo' in names
    from mmsamptx.apis import resolve_config
    assert resolve_config('samptx_demo') == SAMPTX
    assert osp.samefile(resolve_config('ptsam/demo/parallel-adapter_demo'),
                        osp.join(osp.dirname(SAMPTX), '..', 'ptsam', 'demo', 'parallel-adapter_demo.py'))
    with pytest.raises(InputError, match="ambiguous: say which of demo/parallel-adapter_demo"):
        resolve_config('parallel-adapter_demo')
    with pytest.raises(InputError, match="unknown model 'samptx_ade20k_1-65'.*close: samptx_ade20k_1-64"):
        resolve_config('samptx_ade20k_1-65')


def test_expressions_go_to_an_evf_sam_models_referring_path(demo, tmp_path):
    import io

    import sentencepiece as spm
    from mmengine.config import Config
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(['the plate on the left', 'a tray'] * 20),
                                   model_writer=buf, vocab_size=30, character_coverage=1.0,
                                   hard_vocab_limit=False, minloglevel=2)
    (tmp_path / 'spm.model').write_bytes(buf.getvalue())
    torch.manual_seed(0)
    m = TextSAM(Config(dict(model=dict(
        type='EVFSAM', visual_model=dict(type='EVFVisualSAM', arch='tiny', img_size=64),
        fusion_encoder=dict(type='BEiT3', arch='tiny', img_size=32, vocab_size=80,
                            max_source_positions=40),
        projector=dict(type='EVFPromptProjector'),
        tokenizer=dict(model_file=str(tmp_path / 'spm.model'))))))
    assert m.modes == ('expression',) and m.name == 'EVFSAM'
    phrases = ['the plate on the left', 'a tray']
    p = m.predict(demo.image, expressions=phrases)[0]
    ref = m.model.predict_expressions(load_image(demo.image), phrases)
    np.testing.assert_array_equal(p.masks, ref['masks'])
    np.testing.assert_array_equal(p.scores, ref['scores'])
    assert p.labels == phrases and p.masks.shape == (2, 128, 128)
    for k in (1, 2):
        assert p.masks[k - 1][p.semantic == k].all()
    assert (p.semantic > 0).sum() == p.masks.any(0).sum()
    np.testing.assert_array_equal(m.predict(demo.image, texts=phrases)[0].masks, p.masks)
    with pytest.raises(InputError, match='takes expressions, not points or boxes'):
        m.predict(demo.image, texts=phrases, points=[(3, 4)])


def test_an_adapter_only_checkpoint_gives_the_full_checkpoints_masks(demo, tmp_path):
    """The tiny arch has no weight files: its base weights are the seeded init_weights() draw
    that the full checkpoint was trained on, so the same seed rebuilds them."""
    from mmsamptx.apis.adapter_checkpoint import export_adapters
    out = export_adapters(demo.ckpt, str(tmp_path / 'samptx_demo.adapters.safetensors'), SAMPTX)
    assert out['adapter_bytes'] < out['full_bytes']
    torch.manual_seed(0)
    adapters = TextSAM('samptx_demo', checkpoint=out['out'])
    full = demo.model.predict(demo.image, texts=['plate', 'tray'])[0]
    np.testing.assert_array_equal(adapters.predict(demo.image, texts=['plate', 'tray'])[0].logits,
                                  full.logits)
    torch.manual_seed(1)  # other base weights: refused by their digest, as one line
    with pytest.raises(CheckpointError, match='trained on other base weights'):
        TextSAM('samptx_demo', checkpoint=out['out'])
