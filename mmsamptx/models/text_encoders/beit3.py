"""BEiT-3: the multiway vision-language encoder that EVF-SAM fuses image and expression with.

One image (a CLS token and its 16 x 16 patches) and one token sequence run
through the same Transformer with full self-attention over both ("early
fusion", EVF-SAM arXiv 2406.20076 §3); each projection and LayerNorm has a
vision expert ``A`` for the image tokens and a language expert ``B`` for the
text tokens (BEiT-3, arXiv 2208.10442). This is torchscale's ``BEiT3`` with
the configuration EVF-SAM uses (multiway, pre-LN with sub-LN, no output layer,
final multiway LayerNorm), written as our own small modules; the parameter
names are torchscale's, so the BEiT-3 and EVF-SAM files load by stripping a
prefix. docs/beit3.md says why torchscale is only the tests' reference.
"""
import logging
from typing import Dict, Optional, Union

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from mmseg.registry import MODELS
from .beit3_checkpoint import (BEIT3_CHECKPOINT_URLS, INIT_FILE_PREFIX, load_beit3_weights,
                               read_beit3_init_file)
from .beit3_layer import LN_EPS, BEiT3Layer
from .beit3_lora import inject_beit3_lora
from .multiway import Multiway, MultiwayPositions

BEIT3_ARCHS: Dict[str, Dict[str, int]] = {
    # embed_dims / layers / heads (head dim 64) / FFN width, as EVF-SAM's
    # _get_large_config and _get_base_config.
    'large': dict(embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096),
    'base': dict(embed_dims=768, num_layers=12, num_heads=12, feedforward_channels=3072),
    # For tests and demos only (no released weights).
    'tiny': dict(embed_dims=32, num_layers=2, num_heads=4, feedforward_channels=128),
}
_ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'feedforward_channels')


def resolve_beit3_arch(arch: Union[str, dict]) -> Dict[str, int]:
    """The numbers of a BEiT-3 arch name, or a dict with all of ``_ARCH_KEYS``."""
    if isinstance(arch, str):
        if arch not in BEIT3_ARCHS:
            raise ValueError(f'unknown BEiT-3 arch {arch!r}; valid: {", ".join(BEIT3_ARCHS)} or a dict '
                             f'with {", ".join(_ARCH_KEYS)}')
        return dict(BEIT3_ARCHS[arch])
    if not isinstance(arch, dict):
        raise TypeError(f'BEiT-3 arch must be a name or a dict, got {type(arch).__name__}')
    missing = [k for k in _ARCH_KEYS if k not in arch]
    unknown = [k for k in arch if k not in _ARCH_KEYS]
    if missing or unknown:
        raise ValueError(f'BEiT-3 arch dict: missing {missing}, unknown {unknown}; '
                         f'expected exactly {", ".join(_ARCH_KEYS)}')
    return {k: int(arch[k]) for k in _ARCH_KEYS}


class BEiT3VisionEmbedding(nn.Module):
    """Patch embedding with a CLS token: (B, 3, H, W) -> (B, 1 + (H/p)(W/p), C).

    ``mask_token`` (BEiT-3's masked-image-modelling token) is kept for the
    checkpoints' sake; this encoder never reads it.
    """

    def __init__(self, img_size: int, patch_size: int, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f'img_size {img_size} is not a multiple of patch_size {patch_size}')
        self.img_size = img_size
        self.num_patches = (img_size // patch_size) ** 2
        # Registration order = torchscale's state_dict order.
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
        self.proj = nn.Conv2d(in_channels, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, 3, H, W) -> (B, 1 + HW/p^2, C), the CLS token first, patches row-major."""
        x = self.proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)


class BEiT3Encoder(nn.Module):
    """Positions, the layers and the final multiway LayerNorm (torchscale's ``encoder``)."""

    def __init__(self, num_vision: int, max_source_positions: int, embed_dims: int, num_layers: int,
                 num_heads: int, feedforward_channels: int, drop_path_rate: float,
                 fused_attn: bool) -> None:
        super().__init__()
        self.embed_positions = MultiwayPositions(num_vision, max_source_positions, embed_dims)
        # np.linspace(0, rate, layers) as torchscale (plain floats: builds on the meta device too).
        rates = [drop_path_rate * i / max(num_layers - 1, 1) for i in range(num_layers)]
        self.layers = nn.ModuleList(
            BEiT3Layer(embed_dims, num_heads, feedforward_channels, drop_path=rates[i],
                       fused_attn=fused_attn) for i in range(num_layers))
        self.layer_norm = Multiway(nn.LayerNorm(embed_dims, eps=LN_EPS), nn.LayerNorm(embed_dims, eps=LN_EPS))


@MODELS.register_module()
class BEiT3(BaseModule):
    """The BEiT-3 encoder on one image and one token sequence per sample.

    Args:
        arch: ``'large'`` (EVF-SAM's), ``'base'``, ``'tiny'`` (tests) or a dict
            with ``embed_dims``, ``num_layers``, ``num_heads``, ``feedforward_channels``.
        img_size: the square input size (224: 196 patches + CLS = 197 vision tokens).
        patch_size: patch side.
        in_channels: image channels.
        vocab_size: rows of the text embedding (64010 for BEiT-3's sentencepiece vocabulary).
        max_source_positions: rows of the text position table; texts hold at most
            ``max_source_positions - 2`` tokens (:attr:`max_text_len`).
        drop_path_rate: stochastic depth, rising linearly to this value at the last layer.
        fused_attn: ``F.scaled_dot_product_attention`` instead of the explicit
            softmax (equal to float rounding; the explicit path is torchscale's order).
        with_cp: recompute each layer in the backward pass (``torch.utils.checkpoint``)
            instead of keeping its activations, while training with gradients.
        lora_cfg: train LoRA instead of the encoder, e.g. ``dict(r=8, alpha=16,
            target_modules=['q_proj', 'v_proj'])`` (see :mod:`.beit3_lora`): the
            targeted Linears are wrapped by peft and every other parameter is frozen.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads a BEiT-3
            init file (``{'model': ...}``, keys under ``beit3.``; another ``prefix``
            may be given) in :meth:`init_weights`. Without it the weights are
            EVF-SAM's random init (Linear trunc-normal 0.02, LayerNorm 1/0).
    """

    def __init__(self, arch: Union[str, dict] = 'large', img_size: int = 224, patch_size: int = 16,
                 in_channels: int = 3, vocab_size: int = 64010, max_source_positions: int = 1024,
                 drop_path_rate: float = 0.0, fused_attn: bool = True, with_cp: bool = False,
                 lora_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        numbers = resolve_beit3_arch(arch)
        self.arch = arch
        self.embed_dims = numbers['embed_dims']
        self.num_layers = numbers['num_layers']
        self.feedforward_channels = numbers['feedforward_channels']
        self.vocab_size = vocab_size
        self.with_cp = with_cp
        self.lora_cfg = lora_cfg

        # Registration order = torchscale's state_dict order.
        self.text_embed = nn.Embedding(vocab_size, self.embed_dims)
        self.vision_embed = BEiT3VisionEmbedding(img_size, patch_size, in_channels, self.embed_dims)
        self.num_vision_tokens = self.vision_embed.num_patches + 1
        self.encoder = BEiT3Encoder(self.num_vision_tokens, max_source_positions, self.embed_dims,
                                    self.num_layers, numbers['num_heads'], self.feedforward_channels,
                                    drop_path_rate, fused_attn)
        self._random_init()
        if lora_cfg is not None:
            inject_beit3_lora(self, lora_cfg)

    @property
    def max_text_len(self) -> int:
        """The longest token sequence (with ``<s>`` and ``</s>``) the position table holds."""
        return self.encoder.embed_positions.max_text_len

    def _random_init(self) -> None:
        """EVF-SAM's init: every Linear trunc-normal std 0.02 cut at +-0.02 with zero bias, every
        LayerNorm 1/0; torchscale's text table N(0, C^-1/2); positions N(0, 1) (nn.Embedding);
        CLS and mask tokens 0; the patch convolution PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-0.02, b=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.text_embed.weight, std=self.embed_dims ** -0.5)

    def init_weights(self) -> None:
        """Load a BEiT-3 init file from a ``Pretrained`` init_cfg, exactly (see beit3_checkpoint)."""
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        checkpoint = cfg['checkpoint']
        prefix = cfg.get('prefix', INIT_FILE_PREFIX)
        if not prefix.endswith('.'):
            prefix += '.'
        state = read_beit3_init_file(checkpoint, prefix=prefix)
        load_beit3_weights(self, state, str(checkpoint), prefix=prefix)
        print_log(f'BEiT-3: loaded {len(state)} tensors from {checkpoint}', logger='current',
                  level=logging.INFO)
        self._is_init = True

    def check_inputs(self, image: Tensor, text_ids: Tensor, text_padding_mask: Optional[Tensor]) -> None:
        """Raise a clear error for inputs this encoder cannot take."""
        size = self.vision_embed.img_size
        if image.dim() != 4 or image.shape[1] != self.vision_embed.proj.in_channels \
                or tuple(image.shape[2:]) != (size, size):
            raise ValueError(f'BEiT3 expects images of shape (B, {self.vision_embed.proj.in_channels}, '
                             f'{size}, {size}), got {tuple(image.shape)}')
        if text_ids.dim() != 2 or text_ids.shape[0] != image.shape[0]:
            raise ValueError(f'text_ids must be (B, L) with B = {image.shape[0]} images, '
                             f'got {tuple(text_ids.shape)}')
        if text_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError(f'text_ids must be integer token ids, got {text_ids.dtype}')
        if text_ids.shape[1] > self.max_text_len:
            raise ValueError(f'the text has {text_ids.shape[1]} tokens, more than the {self.max_text_len} '
                             'the position table holds')
        if text_padding_mask is not None and text_padding_mask.shape != text_ids.shape:
            raise ValueError(f'text_padding_mask has shape {tuple(text_padding_mask.shape)}, '
                             f'text_ids {tuple(text_ids.shape)}')

    def embed(self, image: Tensor, text_ids: Tensor) -> Tensor:
        """Token plus position embeddings: (B, 3, H, W), (B, L) -> (B, S + L, C), S vision tokens."""
        v = self.vision_embed(image.to(self.vision_embed.proj.weight.dtype))
        t = self.text_embed(text_ids)
        x = torch.cat([v, t], dim=1)
        return x + self.encoder.embed_positions(v.shape[1], t.shape[1]).to(x.dtype)

    def forward(self, image: Tensor, text_ids: Tensor,
                text_padding_mask: Optional[Tensor] = None) -> Tensor:
        """Fuse images and token sequences.

        Args:
            image: (B, 3, H, W), already normalised ((x - 0.5) / 0.5 for EVF-SAM), H = W = img_size.
            text_ids: (B, L) token ids (see :class:`BEiT3Tokenizer`).
            text_padding_mask: (B, L), True (or nonzero) at padding; None for none.

        Returns:
            (B, S + L, C) final hidden states: the vision CLS at index 0, the
            S - 1 patches, then the L text tokens (S = 1 + (H/16)(W/16)).
        """
        self.check_inputs(image, text_ids, text_padding_mask)
        x = self.embed(image, text_ids)
        split = self.num_vision_tokens
        mask = None
        if text_padding_mask is not None:
            mask = torch.cat([text_padding_mask.new_zeros(x.shape[0], split, dtype=torch.bool),
                              text_padding_mask.bool()], dim=1)  # (B, S + L)
            # Padded positions enter the first layer as zeros (torchscale does the same).
            x = x * (1 - mask.unsqueeze(-1).type_as(x))
        for layer in self.encoder.layers:
            if self.with_cp and self.training and torch.is_grad_enabled():
                x = activation_checkpoint(layer, x, split, mask, use_reentrant=False)
            else:
                x = layer(x, split, mask)
        return self.encoder.layer_norm(x, split)


__all__ = ['BEiT3', 'BEIT3_ARCHS', 'BEIT3_CHECKPOINT_URLS', 'resolve_beit3_arch']
