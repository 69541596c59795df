"""The web demo (tools/web_demo.py, mmsamptx.apis.web_demo) driven in a real headless Chromium.

The page is served on 127.0.0.1 from this process (gradio in its own thread) with the demo's
tiny SAM-PTx at its initial weights (random: no training, no download), and Debian's
``chromium`` is driven by selenium through Debian's ``chromedriver`` (no browser download).
The screenshot is written to work_dirs/web_demo/screenshot.png.
"""
import io
import os
import os.path as osp
import shutil
import socket
import urllib.request

import numpy as np
import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'  # Debian's packages
CHROMEDRIVER = shutil.which('chromedriver') or '/usr/bin/chromedriver'
CONFIG = osp.join(REPO, 'configs/demo/samptx_demo.py')
SCREENSHOT = osp.join(REPO, 'work_dirs/web_demo/screenshot.png')


def _browser_missing():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    return missing and (f'{" and ".join(missing)} not found: the browser test needs Debian\'s '
                        'Chromium and its driver: apt-get install -y chromium chromium-driver')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _picture(size=128, seed=0):
    """(H, W, 3) uint8 RGB: a textured background and one red blob (a disc and a square)."""
    rng = np.random.default_rng(seed)
    img = (np.full((size, size, 3), (90, 110, 100), np.float32)
           + rng.normal(0, 8, (size, size, 3))).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    blob = ((yy - 60) ** 2 + (xx - 50) ** 2 < 22 ** 2) | ((abs(yy - 64) < 18) & (abs(xx - 82) < 18))
    img[blob] = (220, 60, 60)
    return img


@pytest.fixture(scope='module')
def model():
    from mmsamptx.apis import TextSAM
    return TextSAM(CONFIG, checkpoint=None, device='cpu')


def test_ui_modes_and_prediction_rows(model):
    """What the page offers for this model, and what one click of Segment computes."""
    from mmsamptx.apis import InputError
    from mmsamptx.apis.web_demo import draw_points, run_prediction, ui_modes
    assert model.modes[0] == 'text' and ui_modes(model) == ['text', 'text+points']
    img = _picture()
    overlay, rows, status = run_prediction(model, img, 'text', 'plate, tray', [])
    pred = model.predict(img, texts=['plate', 'tray'])[0]
    np.testing.assert_array_equal(overlay, pred.overlay())
    assert [r[0] for r in rows] == ['plate', 'tray']
    np.testing.assert_allclose([r[1] for r in rows], pred.scores, atol=1e-3)
    assert 'plate' in status
    with pytest.raises(InputError, match='click the image'):
        run_prediction(model, img, 'text+points', 'plate', [])
    with pytest.raises(InputError, match='upload an image'):
        run_prediction(model, None, 'text', 'plate', [])
    overlay, rows, _ = run_prediction(model, img, 'text+points', 'plate', [(50.0, 60.0, 1)])
    assert len(rows) == 1 and overlay.shape[0] == 128
    marked = draw_points(img, [(50.0, 60.0, 1), (90.0, 20.0, 0)])
    assert tuple(marked[60, 50]) == (0, 220, 0) and tuple(marked[20, 90]) == (230, 30, 30)
    assert (marked[100:, :] == img[100:, :]).all() and marked is not img


def test_page_in_headless_chromium(model, tmp_path):
    """Load the page, upload an image, click a point, type a class, run: the overlay appears,
    differs from the input, and the scores name the class; a screenshot is saved."""
    why = _browser_missing()
    if why:
        pytest.skip(why)
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from mmsamptx.apis.web_demo import build_demo
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    img = _picture()
    path = tmp_path / 'picture.png'
    Image.fromarray(img).save(path)
    port = _free_port()
    demo = build_demo(model)
    demo.launch(server_name='127.0.0.1', server_port=port, prevent_thread_lock=True, quiet=True)
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--window-size=1400,1000', '--disable-extensions', '--no-first-run'):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        wait = WebDriverWait(driver, 60)  # bounds, generous for a loaded CI machine
        driver.get(f'http://127.0.0.1:{port}/')
        upload = wait.until(ec.presence_of_element_located(
            (By.CSS_SELECTOR, '#input-image input[type=file]')))
        upload.send_keys(str(path))
        shown = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, '#input-image img')))
        # a click on the image adds a point prompt (drawn on it and listed under it); the
        # model still receives the picture as uploaded
        ActionChains(driver).move_to_element_with_offset(shown, -10, -5).click().perform()
        wait.until(ec.text_to_be_present_in_element((By.ID, 'points'), 'Points: ('))
        box = driver.find_element(By.CSS_SELECTOR, '#texts textarea, #texts input')
        box.send_keys('plate')
        driver.find_element(By.ID, 'run').click()
        out = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, '#output-image img')))
        wait.until(ec.text_to_be_present_in_element((By.ID, 'scores'), 'plate'))
        src = out.get_attribute('src')
        os.makedirs(osp.dirname(SCREENSHOT), exist_ok=True)
        driver.save_screenshot(SCREENSHOT)
        with urllib.request.urlopen(src, timeout=10) as r:  # the served PNG (lossless)
            shown_out = np.asarray(Image.open(io.BytesIO(r.read())).convert('RGB'))
    finally:
        driver.quit()
        demo.close()
    expected = model.predict(img, texts=['plate'])[0].overlay()
    np.testing.assert_array_equal(shown_out, expected)  # the page shows the API's overlay
    assert shown_out.shape[0] == img.shape[0] and shown_out.shape[1] > img.shape[1]  # + legend
    assert (shown_out[:, :img.shape[1]] != img).any()  # the mask is drawn on the picture
    assert osp.getsize(SCREENSHOT) > 10_000


def load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('web_demo_tool', osp.join(REPO, 'tools/web_demo.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_cli_builds_the_page_finds_the_demo_checkpoint_and_names_errors(capsys, tmp_path):
    import gradio as gr
    tool = load_tool()
    assert isinstance(tool.main([CONFIG], launch=False), gr.Blocks)
    missing = tmp_path / 'missing.pth'
    assert tool.main([CONFIG, str(missing)], launch=False) == 2
    assert capsys.readouterr().err == f'error: checkpoint not found: {missing}\n'
    # with no arguments: the checkpoint `make demo` wrote (no training when it is there)
    run_dir = tmp_path / tool.DEMO_RUN_DIR
    run_dir.mkdir(parents=True)
    (run_dir / 'last_checkpoint').write_text(str(run_dir / 'iter_300.pth'))
    assert tool.demo_checkpoint(str(tmp_path)) == str(run_dir / 'iter_300.pth')
    (run_dir / 'last_checkpoint').write_text('work_dirs/demo/samptx/iter_300.pth')
    assert tool.demo_checkpoint(str(tmp_path)) == str(tmp_path / 'work_dirs/demo/samptx/iter_300.pth')
