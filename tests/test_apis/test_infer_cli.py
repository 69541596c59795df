"""tools/infer.py (in-process main): folders and globs, several texts, overlay, PNG masks, COCO RLE."""
import json
import os.path as osp
import shutil

import numpy as np
from PIL import Image
from test_apis.demo_models import SAMPTX, load_tool, save_demo_checkpoint

from mmsamptx.apis import TextSAM
from mmsamptx.apis.prediction import colour_of
from mmsamptx.demo import make_ambiguous_shapes


def test_folder_and_glob_with_several_texts_write_overlay_masks_and_rle(tmp_path, capsys):
    data = make_ambiguous_shapes(str(tmp_path / 'data'), num_train=0, num_val=2)
    ckpt = save_demo_checkpoint(SAMPTX, str(tmp_path / 'samptx.pth'))
    folder = tmp_path / 'photos'
    folder.mkdir()
    for name in ('ADE_val_00000001.jpg', 'ADE_val_00000002.jpg'):
        shutil.copy(osp.join(data, 'images', 'validation', name), folder / name)
    (folder / 'notes.txt').write_text('not an image')  # not an image extension: not read
    infer = load_tool('infer')
    out = tmp_path / 'out'
    assert infer.main([str(folder), '--config', 'samptx_demo', '--checkpoint', ckpt,
                       '--text', 'plate', 'tray', '--text', 'wall', '--rle',
                       '--out-dir', str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert 'infer: 100%' in stderr and '2/2' in stderr  # the progress bar
    assert '2 image(s) segmented' in stdout

    expected = TextSAM(SAMPTX, checkpoint=ckpt).predict(
        str(folder / 'ADE_val_00000002.jpg'), texts=['plate', 'tray', 'wall'])[0]
    stem = out / 'ADE_val_00000002'
    records = json.load(open(f'{stem}_masks.json'))
    assert [r['label'] for r in records] == ['plate', 'tray', 'wall']
    from pycocotools import mask as mask_utils
    for k, record in enumerate(records):
        png = np.array(Image.open(f'{stem}_{record["label"]}_mask.png'))
        assert set(np.unique(png)) <= {0, 255}
        np.testing.assert_array_equal(png > 0, expected.masks[k])
        rle = dict(size=record['segmentation']['size'],
                   counts=record['segmentation']['counts'].encode())
        np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), expected.masks[k])
        assert record['area'] == int(expected.masks[k].sum())
        assert abs(record['score'] - float(expected.scores[k])) < 1e-6
    semantic = Image.open(f'{stem}_semantic.png')
    assert semantic.mode == 'P'
    np.testing.assert_array_equal(np.array(semantic), expected.semantic)
    assert semantic.getpalette()[3:6] == list(colour_of(0))
    overlay = np.array(Image.open(f'{stem}_overlay.png'))
    np.testing.assert_array_equal(overlay, expected.overlay())

    # a glob and a file it also matches: each image once, in order
    assert infer.find_images([str(folder / '*.jpg'), str(folder / 'ADE_val_00000001.jpg')]) == [
        str(folder / 'ADE_val_00000001.jpg'), str(folder / 'ADE_val_00000002.jpg')]
