"""Camouflaged-object metrics (MAE, S-, E-, weighted F-measure) via pysodmetrics."""
import warnings
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmseg.registry import METRICS

from .binary_utils import pixel_field, sample_path
from .class_wise_iou_metric import (GT_INTERPOLATIONS, gt_label_map, resize_labels,
                                    sample_field)


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def _field(sample, name):
    """Return ``sample[name].data`` (dict or SegDataSample), or None."""
    return pixel_field(sample, name)


def foreground_probability(sample) -> np.ndarray:
    """Return the (H, W) foreground probability map of a data sample.

    Looked up in this order:

    - ``pred_prob``: PixelData of shape (1, H, W) holding probabilities in
      [0, 1] (what a binary SAM head should write);
    - ``seg_logits``: (1, H, W) logits -> sigmoid, or (C >= 2, H, W) logits ->
      softmax, channel 1 (mmseg's default for a 2-class decode head);
    - ``pred_sem_seg``: hard 0/1 labels, used as a 0/1 map.
    """
    prob = _field(sample, 'pred_prob')
    if prob is not None:
        prob = _as_numpy(prob).astype(np.float64)
    else:
        logits = _field(sample, 'seg_logits')
        if logits is not None:
            logits = torch.as_tensor(logits).detach().float().cpu()
            if logits.dim() == 2:
                logits = logits[None]
            if logits.shape[0] == 1:
                prob = torch.sigmoid(logits[0]).numpy().astype(np.float64)
            else:
                prob = torch.softmax(logits, 0)[1].numpy().astype(np.float64)
        else:
            label = _field(sample, 'pred_sem_seg')
            if label is None:
                raise KeyError('data sample has none of pred_prob, seg_logits '
                               'or pred_sem_seg to evaluate')
            prob = (_as_numpy(label) == 1).astype(np.float64)
    prob = np.squeeze(prob)
    if prob.ndim != 2:
        raise ValueError(f'probability map must be (H, W) after squeezing, '
                         f'got shape {prob.shape}')
    return prob


def prob_to_uint8(prob: np.ndarray) -> np.ndarray:
    """Quantise a [0, 1] map to uint8 0..255 (round half up), as saved PNGs."""
    return np.clip(np.floor(prob * 255.0 + 0.5), 0, 255).astype(np.uint8)


@METRICS.register_module()
class CODMetric(BaseMetric):
    """Camouflaged object detection metrics computed with ``py_sod_metrics``.

    For each data sample the foreground probability map is taken from
    ``pred_prob`` (probabilities), else ``seg_logits`` (sigmoid for one
    channel, softmax channel 1 for two) -- see :func:`foreground_probability`
    -- and quantised to uint8 0..255 as the maps that COD papers save and then
    evaluate; the ground truth is ``gt_sem_seg`` with 1 = object (-> 255),
    anything else background. Both must be at the original image size (mmseg's
    segmentors resize ``seg_logits`` to ``ori_shape``; the test pipeline should
    load the annotation without resizing it).

    Each map is scored by pysodmetrics' ``MAE``, ``Smeasure``, ``Emeasure``,
    ``WeightedFmeasure`` and ``Fmeasure`` and the per-image values averaged as
    pysodmetrics does, so the numbers equal calling it directly on the same
    maps. Reported keys (0..1 scale, as the COD literature): ``MAE``, ``Sm``,
    ``wFm``, ``maxEm``, ``meanEm``, ``adpEm``, ``maxFm``, ``meanFm``,
    ``adpFm``.

    ``size='mask'`` is the SAM-PTx authors' protocol (samptx-authors.md §6.10):
    the map is ``sigmoid(pred_class_logits)`` at the decoder's output size
    (``pred_class_logits`` (1, h, w), 256² for a 1024² input, as
    ``ClassWiseIoUMetric`` reads it), the ground truth is binarised (label 1,
    i.e. 255 in the mask file through ``CODDataset``'s ``label_map``, or any
    value > 127 left in a mask that was not binarised) and nearest-resized to
    (h, w) (``gt_interpolation``: pixel centres by default, PIL's NEAREST).
    ``MAE`` is then the mean of ``|sigmoid(logit) - gt|`` over the float map, per
    image and averaged over images, exactly the authors' number; the other
    measures are pysodmetrics' on the same map quantised to uint8 at (h, w)
    (the authors compute only MAE).

    Args:
        size (str): ``'full'`` (original size, default) or ``'mask'``.
        gt_interpolation (str): ``'nearest-exact'`` or ``'nearest'``, for
            ``size='mask'``. Defaults to 'nearest-exact'.
    """

    default_prefix: Optional[str] = None
    SIZES = ('full', 'mask')

    def __init__(self,
                 size: str = 'full',
                 gt_interpolation: str = 'nearest-exact',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 **kwargs) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if size not in self.SIZES:
            raise ValueError(f'CODMetric size must be one of {self.SIZES}, got {size!r}')
        if gt_interpolation not in GT_INTERPOLATIONS:
            raise ValueError(f'CODMetric gt_interpolation must be one of '
                             f'{GT_INTERPOLATIONS}, got {gt_interpolation!r}')
        self.size = size
        self.gt_interpolation = gt_interpolation

    def _mask_size_maps(self, sample):
        """(sigmoid map, 0/1 gt) at the logits' size, and the float MAE."""
        logits = sample_field(sample, 'pred_class_logits')
        if logits is None:
            raise KeyError("CODMetric(size='mask') needs pred_class_logits (1, h, w)")
        logits = torch.as_tensor(logits).detach().float().cpu()
        if logits.dim() == 3:
            if logits.shape[0] != 1:
                raise ValueError(f'COD is binary: pred_class_logits must be (1, h, w), '
                                 f'got {tuple(logits.shape)} for {sample_path(sample)}')
            logits = logits[0]
        prob = torch.sigmoid(logits.double()).numpy()
        gt = gt_label_map(sample).cpu().long()
        gt = ((gt == 1) | (gt > 127)).to(torch.uint8)
        gt = resize_labels(gt, prob.shape, self.gt_interpolation).numpy().astype(np.float64)
        return prob, gt, float(np.mean(np.abs(prob - gt)))

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score each sample and keep the per-image values."""
        import py_sod_metrics as sod
        for sample in data_samples:
            float_mae = None
            if self.size == 'mask':
                prob, gt, float_mae = self._mask_size_maps(sample)
                pred, gt = prob_to_uint8(prob), (gt * 255).astype(np.uint8)
            else:
                pred = prob_to_uint8(foreground_probability(sample))
                gt = _field(sample, 'gt_sem_seg')
                if gt is None:
                    raise KeyError('data sample has no gt_sem_seg to evaluate')
                gt = np.squeeze(_as_numpy(gt))
                if gt.shape != pred.shape:
                    path = sample_path(sample)
                    raise ValueError(
                        f'prediction {pred.shape} and ground truth {gt.shape} '
                        f'differ in size for {path}; evaluate at the original size')
                gt = np.where(gt == 1, 255, 0).astype(np.uint8)
            mae, sm, em = sod.MAE(), sod.Smeasure(), sod.Emeasure()
            wfm = sod.WeightedFmeasure()
            with warnings.catch_warnings():  # Fmeasure warns it is legacy
                warnings.simplefilter('ignore')
                fm = sod.Fmeasure()
            for m in (mae, sm, em, wfm, fm):
                m.step(pred=pred, gt=gt)
            em_res, fm_res = em.get_results()['em'], fm.get_results()['fm']
            self.results.append(
                dict(
                    mae=float(mae.get_results()['mae']) if float_mae is None else float_mae,
                    sm=float(sm.get_results()['sm']),
                    wfm=float(wfm.get_results()['wfm']),
                    em_curve=np.asarray(em_res['curve'], np.float64),
                    em_adp=float(em_res['adp']),
                    fm_curve=np.asarray(fm_res['curve'], np.float64),
                    fm_adp=float(fm_res['adp'])))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Average the per-image values as pysodmetrics' ``get_results``."""
        if not results:
            raise ValueError('CODMetric got no sample to evaluate')
        em_curve = np.mean(np.stack([r['em_curve'] for r in results]), 0)
        fm_curve = np.mean(np.stack([r['fm_curve'] for r in results]), 0)
        out = OrderedDict()
        out['MAE'] = float(np.mean([r['mae'] for r in results]))
        out['Sm'] = float(np.mean([r['sm'] for r in results]))
        out['wFm'] = float(np.mean([r['wfm'] for r in results]))
        out['maxEm'] = float(em_curve.max())
        out['meanEm'] = float(em_curve.mean())
        out['adpEm'] = float(np.mean([r['em_adp'] for r in results]))
        out['maxFm'] = float(fm_curve.max())
        out['meanFm'] = float(fm_curve.mean())
        out['adpFm'] = float(np.mean([r['fm_adp'] for r in results]))
        return out
