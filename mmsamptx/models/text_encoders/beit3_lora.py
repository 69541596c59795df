"""LoRA on BEiT-3 through peft: the parameter-efficient alternative to training all of it.

peft wraps each targeted Linear (``W x + (alpha / r) B A x``, B initialised to
zero so the wrapped model starts equal to the plain one) and freezes
everything else. A target names a projection of every layer; ``experts`` picks
the multiway copies it applies to (vision ``A``, language ``B``, or both).
"""
from typing import Dict, Sequence, Tuple

from peft import LoraConfig, inject_adapter_in_model
from torch import nn

ATTENTION_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'out_proj')
FFN_TARGETS = ('fc1', 'fc2')
LORA_CFG_KEYS = ('r', 'alpha', 'target_modules', 'dropout', 'experts')


def _module_names(targets: Sequence[str], experts: Sequence[str]) -> Tuple[str, ...]:
    """peft target names (matched as name suffixes): ``q_proj.A``, ``ffn.B.fc1`` ..."""
    names = []
    for t in targets:
        for e in experts:
            names.append(f'{t}.{e}' if t in ATTENTION_TARGETS else f'ffn.{e}.{t}')
    return tuple(names)


def check_lora_cfg(lora_cfg: Dict) -> Dict:
    """Validate a BEiT-3 ``lora_cfg`` and fill its defaults; errors name the bad key or value."""
    if not isinstance(lora_cfg, dict):
        raise TypeError(f'lora_cfg must be a dict, got {type(lora_cfg).__name__}')
    unknown = sorted(set(lora_cfg) - set(LORA_CFG_KEYS))
    if unknown:
        raise ValueError(f'lora_cfg: unknown key {unknown[0]!r}; valid keys: {", ".join(LORA_CFG_KEYS)}')
    if 'r' not in lora_cfg:
        raise ValueError('lora_cfg needs the rank `r`')
    cfg = dict(alpha=lora_cfg['r'], target_modules=('q_proj', 'v_proj'), dropout=0.0,
               experts=('A', 'B'))
    cfg.update(lora_cfg)
    if not isinstance(cfg['r'], int) or cfg['r'] < 1:
        raise ValueError(f'lora_cfg.r must be a positive int, got {cfg["r"]!r}')
    targets = [cfg['target_modules']] if isinstance(cfg['target_modules'], str) else list(cfg['target_modules'])
    valid = ATTENTION_TARGETS + FFN_TARGETS
    for t in targets:
        if t not in valid:
            raise ValueError(f'lora_cfg.target_modules: unknown target {t!r}; valid: {", ".join(valid)}')
    experts = [cfg['experts']] if isinstance(cfg['experts'], str) else list(cfg['experts'])
    if not experts or any(e not in ('A', 'B') for e in experts):
        raise ValueError(f"lora_cfg.experts must be a subset of ('A', 'B') (vision, language), "
                         f'got {cfg["experts"]!r}')
    cfg['target_modules'] = tuple(targets)
    cfg['experts'] = tuple(experts)
    return cfg


def inject_beit3_lora(model: nn.Module, lora_cfg: Dict) -> nn.Module:
    """Wrap the targeted Linears of ``model`` with LoRA in place; only LoRA stays trainable."""
    cfg = check_lora_cfg(lora_cfg)
    peft_cfg = LoraConfig(r=cfg['r'], lora_alpha=cfg['alpha'], lora_dropout=cfg['dropout'],
                          target_modules=list(_module_names(cfg['target_modules'], cfg['experts'])),
                          bias='none')
    inject_adapter_in_model(peft_cfg, model)
    for name, p in model.named_parameters():
        p.requires_grad_('lora_' in name)
    return model


def lora_param_count(num_layers: int, embed_dims: int, feedforward_channels: int, r: int,
                     target_modules: Sequence[str], experts: Sequence[str]) -> int:
    """Closed form of the LoRA parameters: r (in + out) per wrapped Linear."""
    sizes = dict(q_proj=2 * embed_dims, k_proj=2 * embed_dims, v_proj=2 * embed_dims,
                 out_proj=2 * embed_dims, fc1=embed_dims + feedforward_channels,
                 fc2=embed_dims + feedforward_channels)
    return num_layers * len(experts) * sum(r * sizes[t] for t in target_modules)
