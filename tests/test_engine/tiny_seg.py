"""A tiny mmseg world for the engine and tool tests: an ADE20K-layout dataset and a config file.

Independent of the project's SAM models: an ``EncoderDecoder`` with a narrow
``ResNetV1c``-18 and an ``FCNHead``, 32x32 images, a handful of iterations.
"""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYTHON = sys.executable

N_TRAIN = 4
N_VAL = 2
SIZE = 32


def make_ade_tiny(root):
    """Write ``root/images/{training,validation}/*.jpg`` and ``root/annotations/.../*.png``.

    Labels use ADE20K's convention (0 = other, 1..150 = classes); each image is
    split into a few flat regions so that a tiny network can learn something.
    """
    rng = np.random.RandomState(0)
    for split, n in (('training', N_TRAIN), ('validation', N_VAL)):
        img_dir = osp.join(root, 'images', split)
        ann_dir = osp.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(n):
            label = np.zeros((SIZE, SIZE), np.uint8)
            label[:, :SIZE // 2] = 1 + (i % 3)
            label[:, SIZE // 2:] = 4 + (i % 2)
            label[:4, :4] = 0  # some "other" pixels (ignored after reduce_zero_label)
            colours = rng.randint(0, 255, size=(8, 3))
            img = colours[label].astype(np.uint8)
            img = np.clip(img + rng.randint(-10, 10, img.shape), 0, 255).astype(np.uint8)
            name = f'ADE_{split[0]}_{i:08d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img)
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label)
    return root


CONFIG_TEMPLATE = '''\
custom_imports = dict(imports=['mmsamptx'], allow_failed_imports=False)
default_scope = 'mmseg'
data_root = {data_root!r}
work_dir = {work_dir!r}
crop_size = (32, 32)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    backbone=dict(
        type='ResNetV1c',
        depth=18,
        stem_channels=8,
        base_channels=4,
        num_stages=4,
        out_indices=(3, ),
        dilations=(1, 1, 1, 1),
        strides=(1, 2, 2, 2),
        norm_cfg=norm_cfg,
        norm_eval=False,
        contract_dilation=True),
    decode_head=dict(
        type='FCNHead',
        in_channels=32,
        in_index=0,
        channels=8,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.0,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))
dataset_type = 'ADE20KDataset'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=0.0005))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={sched_end}, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters={max_iters}, val_interval={val_interval})
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval={ckpt_interval}),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=True)
'''


def write_config(path, data_root, work_dir=None, max_iters=4, val_interval=None,
                 ckpt_interval=None, sched_end=None, extra=''):
    """Write the tiny config to ``path`` and return ``path``."""
    text = CONFIG_TEMPLATE.format(
        data_root=str(data_root),
        work_dir=str(work_dir) if work_dir else None,
        max_iters=max_iters,
        val_interval=val_interval or max_iters,
        ckpt_interval=ckpt_interval or max_iters,
        sched_end=sched_end or max_iters)
    with open(path, 'w') as f:
        f.write(text + extra)
    return str(path)


def free_port():
    """A free TCP port on the loopback interface, for a distributed run's rendezvous."""
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def tool_env():
    """Environment for the tool subprocesses: CPU, few threads, the repo importable."""
    env = dict(os.environ)
    env['CUDA_VISIBLE_DEVICES'] = ''
    env['OMP_NUM_THREADS'] = '1'
    env['MKL_NUM_THREADS'] = '1'
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['PYTHON'] = PYTHON
    return env


def run_tool(args, timeout=300, cwd=None):
    """Run ``python <args>`` from the repo root; return the CompletedProcess (text)."""
    return subprocess.run([PYTHON] + [str(a) for a in args], cwd=cwd or REPO,
                          env=tool_env(), capture_output=True, text=True, timeout=timeout)


def scalars(work_dir):
    """All json scalar records written under ``work_dir/<timestamp>/vis_data/scalars.json``."""
    records = []
    for ts in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, ts, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            import json
            with open(path) as f:
                records += [json.loads(line) for line in f if line.strip()]
    return records


def train_losses(work_dir):
    """{step: loss} for the training records of every run in ``work_dir``."""
    return {r['step']: r['loss'] for r in scalars(work_dir) if 'loss' in r}
