"""Generators of tiny datasets in each benchmark's official on-disk layout.

Shared by tests/test_datasets and tests/test_tools/test_dataset_converters.py
(pytest.ini puts ``tests`` on ``sys.path``:
``from test_datasets.miniature import ...``). Everything is deterministic.
"""
import json
import os
import os.path as osp
import pickle

import cv2
import numpy as np


def write_img(path, h, w, seed, ext=None):
    """Write a deterministic random colour image (JPEG or PNG by suffix)."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.RandomState(seed).randint(0, 255, (h, w, 3), np.uint8)
    assert cv2.imwrite(path, img)
    return img


def write_label(path, arr):
    """Write a uint8 single-channel label PNG."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, np.asarray(arr, np.uint8))


def ade_label(i, h=12, w=16):
    """Label of ADE image ``i``: 0 (other) top rows, then class ids 1..150."""
    lab = np.zeros((h, w), np.uint8)
    lab[h // 3:, :w // 2] = (i % 150) + 1
    lab[h // 3:, w // 2:] = ((i * 7) % 150) + 1
    return lab


def make_ade(root, n_train=10, n_val=3, h=12, w=16):
    """ADEChallengeData2016/{images,annotations}/{training,validation}."""
    base = osp.join(root, 'ADEChallengeData2016')
    for subset, prefix, n in (('training', 'ADE_train_', n_train),
                              ('validation', 'ADE_val_', n_val)):
        for i in range(1, n + 1):
            stem = f'{prefix}{i:08d}'
            write_img(osp.join(base, 'images', subset, stem + '.jpg'), h, w, i)
            write_label(osp.join(base, 'annotations', subset, stem + '.png'),
                        ade_label(i, h, w))
    return base


COD_TRAIN = [
    'COD10K-CAM-1-Aquatic-1-BatFish-1',
    'COD10K-CAM-1-Aquatic-3-Crab-12',
    'COD10K-CAM-2-Terrestrial-23-StickInsect-5',
    'COD10K-NonCAM-5-Background-1-Grass-7',
]
COD_TEST = [
    'COD10K-CAM-3-Flying-53-Bird-3',
    'COD10K-NonCAM-5-Background-2-Sky-9',
]


def cod_mask(i, h=10, w=14):
    """0/255 object mask of COD image ``i`` (a rectangle)."""
    m = np.zeros((h, w), np.uint8)
    m[2 + i % 3:7, 3:9 + i % 4] = 255
    return m


def make_cod(root, train=COD_TRAIN, test=COD_TEST, h=10, w=14):
    """COD10K layout: {Train,Test}/{Image,GT_Object}."""
    for split, stems in (('Train', train), ('Test', test)):
        for i, stem in enumerate(stems):
            write_img(osp.join(root, split, 'Image', stem + '.jpg'), h, w, i)
            m = cod_mask(i, h, w)
            if 'NonCAM' in stem:
                m[:] = 0
            write_label(osp.join(root, split, 'GT_Object', stem + '.png'), m)
    return root


# --------------------------------------------------------------------- COCO
COCO_IDS = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
    23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
    46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
    65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88,
    89, 90
]


def rect_poly(x0, y0, x1, y1):
    """COCO polygon of the pixel rectangle [x0, x1) x [y0, y1)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def coco_categories():
    from mmsamptx.datasets.coco_object import COCO_CLASSES
    return [dict(id=cid, name=name, supercategory='x')
            for cid, name in zip(COCO_IDS, COCO_CLASSES[1:])]


def make_coco(root, h=20, w=24):
    """coco/{train2017,val2017}/*.jpg + annotations/instances_*.json.

    Train image 1: a big person (cat 1, label 1) with a small dog (cat 18,
    label 17) on top; image 2: a crowd RLE of cars (cat 3, label 3) and a
    toothbrush (cat 90, label 80); image 3: no annotation.
    """
    from pycocotools import mask as mask_utils
    crowd = np.zeros((h, w), np.uint8, order='F')
    crowd[10:16, 2:8] = 1
    crowd_rle = mask_utils.encode(np.asfortranarray(crowd))
    crowd_rle['counts'] = crowd_rle['counts'].decode('ascii')
    train = dict(
        images=[dict(id=i, file_name=f'{i:012d}.jpg', height=h, width=w)
                for i in (1, 2, 3)],
        annotations=[
            dict(id=10, image_id=1, category_id=1, iscrowd=0, area=200.0,
                 segmentation=rect_poly(0, 0, 20, 10), bbox=[0, 0, 20, 10]),
            dict(id=11, image_id=1, category_id=18, iscrowd=0, area=16.0,
                 segmentation=rect_poly(4, 4, 8, 8), bbox=[4, 4, 4, 4]),
            dict(id=12, image_id=2, category_id=3, iscrowd=1, area=36.0,
                 segmentation=crowd_rle, bbox=[2, 10, 6, 6]),
            dict(id=13, image_id=2, category_id=90, iscrowd=0, area=4.0,
                 segmentation=rect_poly(20, 0, 22, 2), bbox=[20, 0, 2, 2]),
        ],
        categories=coco_categories())
    val = dict(
        images=[dict(id=7, file_name=f'{7:012d}.jpg', height=h, width=w)],
        annotations=[
            dict(id=20, image_id=7, category_id=90, iscrowd=0, area=6.0,
                 segmentation=rect_poly(1, 1, 4, 3), bbox=[1, 1, 3, 2])
        ],
        categories=coco_categories())
    for name, d, sub in (('instances_train2017.json', train, 'train2017'),
                         ('instances_val2017.json', val, 'val2017')):
        os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
        with open(osp.join(root, 'annotations', name), 'w') as f:
            json.dump(d, f)
        for im in d['images']:
            write_img(osp.join(root, sub, im['file_name']), h, w, im['id'])
    return root


def expected_coco_train_labels(h=20, w=24):
    """The semantic labels the COCO converter must write for ``make_coco``."""
    l1 = np.zeros((h, w), np.uint8)
    l1[0:10, 0:20] = 1
    l1[4:8, 4:8] = 17  # dog painted over the person (smaller area on top)
    l2 = np.zeros((h, w), np.uint8)
    l2[10:16, 2:8] = 3  # crowd region, crowd='label'
    l2[0:2, 20:22] = 80
    return {'000000000001': l1, '000000000002': l2,
            '000000000003': np.zeros((h, w), np.uint8)}


# ------------------------------------------------------------------ RefCOCO
def make_refer(root, dataset='refcoco', split_by='unc', h=16, w=20):
    """refer layout: <root>/<dataset>/refs(<split_by>).p + instances.json,
    images in <root>/images/train2014.

    Two images; ann 100 (image 1, rect), ann 101 (image 1, other rect),
    ann 102 (image 2). Refs: val has ref 1 (ann 100, 2 sentences) and ref 3
    (ann 102, 1 sentence); testA has ref 2 (ann 101, 1 sentence); train has
    ref 4 (ann 100, 1 sentence).
    """
    images = [dict(id=i, file_name=f'COCO_train2014_{i:012d}.jpg', height=h,
                   width=w) for i in (1, 2)]
    anns = [
        dict(id=100, image_id=1, category_id=1, iscrowd=0,
             segmentation=rect_poly(0, 0, 10, 8), area=80.0, bbox=[0, 0, 10, 8]),
        dict(id=101, image_id=1, category_id=18, iscrowd=0,
             segmentation=rect_poly(12, 8, 18, 14), area=36.0,
             bbox=[12, 8, 6, 6]),
        dict(id=102, image_id=2, category_id=3, iscrowd=0,
             segmentation=rect_poly(2, 2, 6, 12), area=40.0,
             bbox=[2, 2, 4, 10]),
    ]

    def ref(ref_id, ann_id, image_id, split, sents):
        return dict(
            ref_id=ref_id, ann_id=ann_id, image_id=image_id, split=split,
            category_id=1,
            file_name=f'COCO_train2014_{image_id:012d}_{ann_id}.jpg',
            sent_ids=[ref_id * 10 + k for k in range(len(sents))],
            sentences=[dict(sent=s, raw=s, tokens=s.split(),
                            sent_id=ref_id * 10 + k)
                       for k, s in enumerate(sents)])

    refs = [
        ref(1, 100, 1, 'val', ['man on the left', 'person in red']),
        ref(2, 101, 1, 'testA', ['small dog']),
        ref(3, 102, 2, 'val', ['blue car']),
        ref(4, 100, 1, 'train', ['left man']),
    ]
    d = osp.join(root, dataset)
    os.makedirs(d, exist_ok=True)
    with open(osp.join(d, f'refs({split_by}).p'), 'wb') as f:
        pickle.dump(refs, f, protocol=2)
    with open(osp.join(d, 'instances.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns,
                       categories=coco_categories()), f)
    for im in images:
        write_img(osp.join(root, 'images', 'train2014', im['file_name']), h, w,
                  im['id'])
    return root


# ------------------------------------------------------------------ few-shot
def make_folder_binary(root, n=20, h=8, w=10, mask_values=(0, 255)):
    """images/<stem>.png + masks/<stem>.png (0/255)."""
    for i in range(n):
        stem = f'cell_{i:03d}'
        write_img(osp.join(root, 'images', stem + '.png'), h, w, i)
        m = np.full((h, w), mask_values[0], np.uint8)
        m[1:1 + i % 5, 2:6] = mask_values[1]
        write_label(osp.join(root, 'masks', stem + '.png'), m)
    return root


def make_dsb(root, n=5, h=8, w=10):
    """stage1_train/<id>/images/<id>.png + masks/*.png (one per nucleus)."""
    base = osp.join(root, 'stage1_train')
    for i in range(n):
        sid = f'{i:02d}' + 'ab' * 4
        write_img(osp.join(base, sid, 'images', sid + '.png'), h, w, i)
        m1 = np.zeros((h, w), np.uint8)
        m1[0:3, 0:3] = 255
        m2 = np.zeros((h, w), np.uint8)
        m2[4:4 + i % 3 + 1, 5:9] = 255
        write_label(osp.join(base, sid, 'masks', 'n1.png'), m1)
        write_label(osp.join(base, sid, 'masks', 'n2.png'), m2)
    return base


def dsb_union(i, h=8, w=10):
    m = np.zeros((h, w), np.uint8)
    m[0:3, 0:3] = 1
    m[4:4 + i % 3 + 1, 5:9] = 1
    return m


# --------------------------------------------------------- UniMatch split lists
def ade_unimatch_lines(ids, subset='training'):
    """UniMatch V2 lines ``images/<subset>/<stem>.jpg annotations/<subset>/<stem>.png``."""
    prefix = 'ADE_train_' if subset == 'training' else 'ADE_val_'
    return [f'images/{subset}/{prefix}{i:08d}.jpg '
            f'annotations/{subset}/{prefix}{i:08d}.png' for i in ids]


def coco_unimatch_lines(ids, subset='train2017'):
    """UniMatch lines ``<subset>/<12-digit id>.jpg masks/<12-digit id>.png``."""
    return [f'{subset}/{i:012d}.jpg masks/{i:012d}.png' for i in ids]


def write_split_lines(path, lines, final_newline=False):
    """Write split lines as UniMatch does: some of its files lack a final newline."""
    os.makedirs(osp.dirname(str(path)), exist_ok=True)
    text = '\n'.join(lines) + ('\n' if final_newline else '')
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def serve_folder(folder):
    """Serve ``folder`` over HTTP on 127.0.0.1 in a thread (a context manager).

    Yields ``(base_url, requests)``; ``requests`` lists each path asked for,
    so a test can tell a cached file from a downloaded one.
    """
    import contextlib
    import functools
    import http.server
    import threading

    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    @contextlib.contextmanager
    def running():
        server = http.server.ThreadingHTTPServer(
            ('127.0.0.1', 0),
            functools.partial(Handler, directory=str(folder)))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f'http://127.0.0.1:{server.server_address[1]}', requests
        finally:
            server.shutdown()
            server.server_close()
            thread.join()

    return running()


def closed_port_url():
    """An http URL on 127.0.0.1 where nothing listens (a refused connection)."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return f'http://127.0.0.1:{port}'
