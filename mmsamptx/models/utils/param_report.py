"""Trainable versus total parameters per top-level module (like peft's report)."""
from typing import Dict, Tuple

import torch.nn as nn


def parameter_report(model: nn.Module) -> Dict[str, Tuple[int, int]]:
    """Map each top-level child (and ``'total'``) to ``(trainable, total)`` parameter counts.

    Shared parameters are counted once.
    """
    report = {}
    seen_all = set()
    for name, child in model.named_children():
        params = {id(p): p for p in child.parameters() if id(p) not in seen_all}
        seen_all.update(params)
        report[name] = (sum(p.numel() for p in params.values() if p.requires_grad),
                        sum(p.numel() for p in params.values()))
    direct = [p for p in model.parameters(recurse=False) if id(p) not in seen_all]
    if direct:
        report['(own)'] = (sum(p.numel() for p in direct if p.requires_grad),
                           sum(p.numel() for p in direct))
    report['total'] = (sum(t for t, _ in report.values()), sum(n for _, n in report.values()))
    return report


def format_parameter_report(model: nn.Module) -> str:
    """A table of :func:`parameter_report`, one line per module, for the training log."""
    rows = parameter_report(model)
    width = max(len(k) for k in rows)
    lines = [f'{"module":<{width}}  {"trainable":>12}  {"total":>12}  {"%":>7}']
    for name, (trainable, total) in rows.items():
        pct = 100.0 * trainable / total if total else 0.0
        lines.append(f'{name:<{width}}  {trainable:>12,}  {total:>12,}  {pct:>6.3f}%')
    return '\n'.join(lines)
