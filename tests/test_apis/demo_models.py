"""Checkpoints of `make demo`'s tiny models for the API and tool-error tests, saved as tools/train.py saves them."""
import importlib.util
import os.path as osp

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SAMPTX = osp.join(REPO, 'configs', 'demo', 'samptx_demo.py')
DECODER_ONLY = osp.join(REPO, 'configs', 'demo', 'decoder-only_demo.py')


def save_demo_checkpoint(config: str, path: str, seed: int = 0) -> str:
    """Build ``config``'s model with seeded random weights and save it with mmengine's layout
    (``meta`` with the experiment name a run of that config gets, and ``state_dict``)."""
    from mmsamptx.apis import build_model
    torch.manual_seed(seed)
    model, cfg = build_model(config)
    model.init_weights()
    stem = osp.splitext(osp.basename(config))[0]
    torch.save(dict(meta=dict(experiment_name=f'{stem}_20261207_120000', cfg=cfg.pretty_text),
                    state_dict=model.state_dict()), path)
    return path


def load_tool(name: str):
    """tools/<name>.py as a module, for in-process ``main(argv)`` calls."""
    spec = importlib.util.spec_from_file_location(f'mmsamptx_tool_{name}_api',
                                                  osp.join(REPO, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_block(heading: str = '## Python API') -> str:
    """The first ```python block under ``heading`` in README.md, as written."""
    text = open(osp.join(REPO, 'README.md')).read()
    section = text.split(heading, 1)[1]
    return section.split('```python\n', 1)[1].split('```', 1)[0]
