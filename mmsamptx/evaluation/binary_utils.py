"""Shared helpers for the binary (foreground/background) metrics."""
import numpy as np
import torch


def pixel_field(sample, name):
    """Return ``sample[name].data`` as a squeezed numpy array, or None.

    Works for packed ``SegDataSample`` objects and for the dicts that mmseg's
    test loop hands to metrics (``data_sample.to_dict()``).
    """
    if isinstance(sample, dict):
        value = sample.get(name, None)
        if isinstance(value, dict):
            value = value.get('data', None)
    else:
        value = getattr(sample, name, None) if name in sample else None
    if value is None:
        return None
    value = getattr(value, 'data', value)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.squeeze(np.asarray(value))


def sample_path(sample) -> str:
    """Return the sample's ``img_path`` for error messages ('?' if unknown)."""
    if isinstance(sample, dict):
        return str(sample.get('img_path', '?'))
    return str(sample.metainfo.get('img_path', '?'))


def foreground_areas(sample, ignore_index: int = 255):
    """Return (intersection, union, pred area, gt area) of the foreground.

    Foreground is label 1 in ``pred_sem_seg`` and ``gt_sem_seg``; pixels whose
    ground truth is ``ignore_index`` are left out.
    """
    pred = pixel_field(sample, 'pred_sem_seg')
    gt = pixel_field(sample, 'gt_sem_seg')
    if pred is None or gt is None:
        raise KeyError(f'data sample {sample_path(sample)} needs pred_sem_seg '
                       'and gt_sem_seg')
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth '
                         f'{gt.shape} differ in size for {sample_path(sample)}')
    valid = gt != ignore_index
    p = (pred == 1) & valid
    g = (gt == 1) & valid
    inter = int(np.count_nonzero(p & g))
    union = int(np.count_nonzero(p | g))
    return inter, union, int(np.count_nonzero(p)), int(np.count_nonzero(g))
