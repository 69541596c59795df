"""User errors in tools/infer.py, tools/test.py and tools/train.py: one line `error: ...`, exit status 2.

Every case calls the tool's ``main(argv)`` in-process (no subprocess) on `make demo`'s tiny models.
"""
import pytest
from test_apis.demo_models import DECODER_ONLY, SAMPTX, load_tool, save_demo_checkpoint

from mmsamptx.demo import make_ambiguous_shapes


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('user_errors')
    data = make_ambiguous_shapes(str(root / 'data'), num_train=1, num_val=1)
    samptx = save_demo_checkpoint(SAMPTX, str(root / 'samptx.pth'))
    truncated = root / 'truncated.pth'
    truncated.write_bytes(open(samptx, 'rb').read()[:5000])
    not_ckpt = root / 'notes.pth'
    not_ckpt.write_text('not a checkpoint\n')
    empty_img = root / 'empty.jpg'
    empty_img.write_bytes(b'')
    bad_img = root / 'bad.png'
    bad_img.write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)  # a PNG signature, no image
    return dict(data=data, samptx=samptx, decoder=save_demo_checkpoint(DECODER_ONLY,
                                                                        str(root / 'decoder.pth')),
                truncated=str(truncated), not_ckpt=str(not_ckpt), empty_img=str(empty_img),
                bad_img=str(bad_img), image=f'{data}/images/validation/ADE_val_00000001.jpg',
                root=root)


@pytest.fixture(scope='module')
def tools():
    return {name: load_tool(name) for name in ('infer', 'test', 'train')}


def assert_one_line_error(capsys, rc, *fragments):
    out, err = capsys.readouterr()
    assert rc == 2, err[-2000:]
    assert 'Traceback' not in out + err
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(lines) == 1, err[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------ tools/infer.py
def infer(tools, files, *extra, config=SAMPTX, checkpoint='samptx', image='image'):
    argv = [files.get(image, image), '--config', config, '--out-dir', str(files['root'] / 'out')]
    if checkpoint is not None:
        argv += ['--checkpoint', files.get(checkpoint, checkpoint)]
    return tools['infer'].main(argv + list(extra))


@pytest.mark.parametrize('image,fragment', [
    ('missing.jpg', 'image file not found: missing.jpg'),
    ('empty_img', 'empty.jpg is empty'),
    ('bad_img', 'bad.png cannot be decoded as an image'),
])
def test_infer_bad_image(tools, files, capsys, image, fragment):
    assert_one_line_error(capsys, infer(tools, files, '--text', 'plate', image=image), fragment)


def test_infer_missing_config_and_unknown_model_name(tools, files, capsys):
    rc = infer(tools, files, '--text', 'plate', config='configs/nope.py')
    assert_one_line_error(capsys, rc, 'config file not found: configs/nope.py')
    rc = infer(tools, files, '--text', 'plate', config='samptx_demoo')
    assert_one_line_error(capsys, rc, "unknown model 'samptx_demoo'", 'close: samptx_demo')


@pytest.mark.parametrize('checkpoint,fragment', [
    ('missing.pth', 'checkpoint file not found: missing.pth'),
    ('not_ckpt', 'notes.pth cannot be read: it is not a PyTorch checkpoint'),
    ('truncated', 'truncated.pth cannot be read: it is truncated'),
])
def test_infer_unreadable_checkpoint(tools, files, capsys, checkpoint, fragment):
    rc = infer(tools, files, '--text', 'plate', checkpoint=checkpoint)
    assert_one_line_error(capsys, rc, fragment)


def test_infer_checkpoint_of_another_config_is_refused_unless_allow_partial(tools, files, capsys):
    """The issue's case: a decoder-only checkpoint with the SAM-PTx config loaded silently."""
    rc = infer(tools, files, '--text', 'plate', checkpoint='decoder')
    assert_one_line_error(capsys, rc, 'does not fit samptx_demo', "70 of the model's keys are missing",
                          'backbone.blocks.0.adapter.down.weight',
                          "it seems to be from config 'decoder-only_demo'", '--allow-partial')
    rc = infer(tools, files, '--points', '40,60', config=DECODER_ONLY, checkpoint='samptx')
    assert_one_line_error(capsys, rc, 'does not fit decoder-only_demo', 'keys are not in the model',
                          "it seems to be from config 'samptx_demo'")
    assert infer(tools, files, '--text', 'plate', '--allow-partial', checkpoint='decoder') == 0
    assert (files['root'] / 'out' / 'ADE_val_00000001_plate_mask.png').is_file()


def test_infer_unknown_class_of_a_closed_vocabulary(tools, files, capsys):
    rc = infer(tools, files, '--text', 'cat', '--points', '40,60', config=DECODER_ONLY,
               checkpoint='decoder')
    assert_one_line_error(capsys, rc, "unknown class 'cat'", 'closed vocabulary of 3 classes',
                          'wall, plate, tray')


def test_infer_expression_for_a_class_prompted_model(tools, files, capsys):
    rc = infer(tools, files, '--expression', 'the plate on the left')
    assert_one_line_error(capsys, rc, 'is prompted by class names', 'not expressions')


# ------------------------------------------------------------------------- tools/test.py
def test_test_missing_data_root(tools, files, capsys):
    rc = tools['test'].main([SAMPTX, files['samptx'], '--work-dir', str(files['root'] / 'w'),
                             '--cfg-options', 'test_dataloader.dataset.data_root=/no/such/ade'])
    assert_one_line_error(capsys, rc, 'data root not found: /no/such/ade',
                          'test_dataloader.dataset.data_root')


@pytest.mark.parametrize('checkpoint,fragment', [
    ('truncated', 'truncated.pth cannot be read: it is truncated'),
    ('not_ckpt', 'notes.pth cannot be read: it is not a PyTorch checkpoint'),
    ('decoder', "does not fit samptx_demo: 70 of the model's keys are missing"),
])
def test_test_bad_checkpoint_is_strict(tools, files, capsys, checkpoint, fragment):
    rc = tools['test'].main([SAMPTX, files[checkpoint], '--work-dir', str(files['root'] / 'w'),
                             '--cfg-options', f'test_dataloader.dataset.data_root={files["data"]}'])
    assert_one_line_error(capsys, rc, fragment)


def test_test_allow_partial_loads_the_partial_model(tools, files, capsys, monkeypatch):
    import torch

    import mmsamptx.engine as engine
    built = {}
    real_build = engine.build_runner

    def build_runner(cfg):
        runner = built['runner'] = real_build(cfg)
        runner.test = lambda: {}  # the loop itself is tested with the tools' own tests
        return runner

    monkeypatch.setattr(engine, 'build_runner', build_runner)
    rc = tools['test'].main([SAMPTX, files['decoder'], '--allow-partial', '--work-dir',
                             str(files['root'] / 'w'), '--cfg-options',
                             f'test_dataloader.dataset.data_root={files["data"]}'])
    out, err = capsys.readouterr()
    assert rc == 0, err[-2000:]
    assert 'partial load of' in out + err and '70 missing keys' in out + err
    state = built['runner'].model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in torch.load(files['decoder'])['state_dict'].items())


# ------------------------------------------------------------------------ tools/train.py
def train(tools, files, *options):
    return tools['train'].main([SAMPTX, '--work-dir', str(files['root'] / 'train'), '--cfg-options',
                                f'train_dataloader.dataset.data_root={files["data"]}',
                                f'val_dataloader.dataset.data_root={files["data"]}', *options])


def test_train_missing_data_root(tools, files, capsys):
    rc = train(tools, files, 'train_dataloader.dataset.data_root=/no/such/ade')
    assert_one_line_error(capsys, rc, 'data root not found: /no/such/ade',
                          'train_dataloader.dataset.data_root')


def test_train_unreadable_start_checkpoint(tools, files, capsys):
    rc = train(tools, files, f'load_from={files["truncated"]}')
    assert_one_line_error(capsys, rc, 'truncated.pth cannot be read: it is truncated')


def test_train_start_checkpoint_of_another_config(tools, files, capsys, monkeypatch):
    import mmsamptx.apis.memory as memory
    monkeypatch.setattr(memory, 'log_training_memory', lambda *a, **k: None)  # not this test's topic
    rc = train(tools, files, f'load_from={files["decoder"]}')
    assert_one_line_error(capsys, rc, "does not fit samptx_demo: 70 of the model's keys are missing",
                          "it seems to be from config 'decoder-only_demo'")
