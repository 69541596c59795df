"""Loss and metric curves from mmengine's ``vis_data/scalars.json`` logs, as one PNG."""
import glob
import io
import json
import os.path as osp
from typing import Dict, List, Tuple

from .io import atomic_write


def read_scalars(work_dir: str) -> Tuple[List[Tuple[int, float]], List[Tuple[int, float]]]:
    """(train loss points, val mIoU points) of the newest run logged under ``work_dir``."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no */vis_data/scalars.json under {work_dir}; has it trained?')
    loss, miou = [], []
    with open(logs[-1]) as f:
        for line in f:
            rec = json.loads(line)
            if 'loss' in rec:
                loss.append((rec['step'], rec['loss']))
            # 'mIoU', or prefixed by the inference mode ('prompted/mIoU').
            key = next((k for k in rec if k == 'mIoU' or k.endswith('/mIoU')), None)
            if key is not None:
                miou.append((rec['step'], rec[key]))
    return loss, miou


def plot_curves(runs: Dict[str, str], out_png: str) -> str:
    """Plot training loss and validation mIoU of several work dirs side by side; returns the path."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(10, 4))
    for name, work_dir in runs.items():
        loss, miou = read_scalars(work_dir)
        if loss:
            ax_loss.plot(*zip(*loss), label=name)
        if miou:
            ax_miou.plot(*zip(*miou), marker='o', label=name)
    ax_loss.set(title='training loss', xlabel='iteration', ylabel='loss')
    ax_miou.set(title='validation mIoU', xlabel='iteration', ylabel='mIoU (%)')
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100)
    plt.close(fig)
    with atomic_write(out_png) as f:
        f.write(buf.getvalue())
    return out_png
