"""SAM's ViT image encoder as an mmseg backbone, with adapter hook points beside every attention and MLP."""
import copy
from typing import Any, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from ..utils.precision import autocast_context, resolve_autocast_dtype
from ..utils.sam_block import SAMBlock
from ..utils.sam_checkpoint import load_sam_part, sam_checkpoint_of

#: The encoders of ``segment_anything.build_sam`` (patch 16, window 14, MLP ratio 4),
#: plus ``tiny`` for tests and CPU demos (no official weights).
SAM_ENCODER_ARCHS = {
    'vit_b': dict(embed_dims=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    'vit_l': dict(embed_dims=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    'vit_h': dict(embed_dims=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
    'tiny': dict(embed_dims=64, depth=4, num_heads=2, global_attn_indexes=(1, 3), window_size=4),
}


def resolve_arch(arch: Union[str, dict]) -> dict:
    """Return the numbers of ``arch`` (a name of :data:`SAM_ENCODER_ARCHS` or a dict of them)."""
    if isinstance(arch, dict):
        missing = {'embed_dims', 'depth', 'num_heads', 'global_attn_indexes'} - set(arch)
        if missing:
            raise ValueError(f'custom arch {arch} lacks {sorted(missing)}')
        return dict(arch)
    if arch not in SAM_ENCODER_ARCHS:
        raise ValueError(f'Unknown SAM arch {arch!r}; valid: {sorted(SAM_ENCODER_ARCHS)} '
                         'or a dict with embed_dims, depth, num_heads, global_attn_indexes')
    return dict(SAM_ENCODER_ARCHS[arch])


class PatchEmbed(nn.Module):
    """Image to patch tokens: a strided convolution (name ``proj`` as in SAM)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dims: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dims, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) -> (B, H / patch, W / patch, embed_dims)."""
        return self.proj(x).permute(0, 2, 3, 1)


@MODELS.register_module()
class SAMImageEncoder(BaseModule):
    """SAM's image encoder trunk (ViT with windowed and global attention), frozen by default.

    The neck is the separate :class:`SAMNeck`, as mmseg splits backbone and neck.
    Parameter names follow the official checkpoints below ``image_encoder.``.

    Args:
        arch: ``'vit_b'``, ``'vit_l'``, ``'vit_h'``, ``'tiny'`` or a dict of numbers.
        img_size: input side the absolute position embedding is trained for
            (1024 for the official weights); other input sizes interpolate it.
        patch_size, window_size, mlp_ratio: SAM's values by default.
        out_indices: blocks whose outputs are returned (``-1`` is the last).
        frozen: freeze SAM's own parameters (adapters attached later stay trainable).
        adapter_cfg: config of an adapter to attach beside the MLP of blocks (see
            :func:`mmsamptx.models.adapters.attach_adapters`, slot ``'adapter'``),
            e.g. ``dict(type='ParallelTextAdapter', blocks=None)``, or a list of
            such dicts with disjoint ``blocks`` for different types in different
            blocks (CLIP-Guided SAM: ``SemanticAdapter`` in the last S blocks,
            ``ParallelAdapter`` in the others); ``None`` for none.
        attn_adapter_cfg: config of an adapter to attach beside the attention of
            blocks (slot ``'attn_adapter'``, same ``blocks`` convention), e.g.
            ``dict(type='AttentionAdapter')`` (SU-SAM's regular adapter); ``None``
            for none. All three ``None`` is plain SAM.
        qkv_adapter_cfg: config of an adapter that wraps the attention's fused
            q/k/v projection of blocks (slot ``'attn.qkv'``, same ``blocks``
            convention), e.g. ``dict(type='LoRAQKV', rank=4, targets=('q', 'v'))``
            (SAMed's LoRA); SAM's projection weights keep their keys. ``None``
            for none.
        prompt_cfg: config of visual prompt tokens joining the blocks' token
            sequences, e.g. ``dict(type='EncoderPromptTokens', num_tokens=8,
            depth='deep')`` (PTSAM); ``embed_dims`` and ``num_blocks`` are filled
            in. Combines with ``adapter_cfg``. ``None`` for none.
        fused_attn: compute attention with ``scaled_dot_product_attention``, the
            relative-position bias folded into extra head dims (no mask, no
            (L, L) matrix kept for backward): ``True`` in every block, ``False``
            in none (SAM's explicit softmax), ``'global'`` in the global-attention
            blocks, and in windowed ones only where no gradient flows through them
            (inference, frozen early blocks). On a CPU, SDPA wins in global blocks
            and in every forward, and loses in the backward pass of windowed
            blocks (docs/benchmarks.md).
        with_cp: non-reentrant activation checkpointing in training: ``True``
            for every block, ``False`` for none, or a list of block indices
            (negative ones count from the end). Checkpointing a block trades
            one more forward of it for not keeping its activations.
        autocast_dtype: ``'bfloat16'`` (or ``'float16'``) runs the encoder under
            ``torch.autocast`` on the input's device, its residual stream in that
            dtype; outputs are float32. ``'auto'``: bfloat16 where the device
            computes it natively (CUDA with bf16, a CPU with AVX512-BF16/AMX),
            else float32. ``None`` (default) keeps float32 throughout.
        compile_blocks: ``torch.compile`` every block in place (``True``, or a dict of
            ``torch.compile`` arguments), compiled on first use; state-dict keys
            are unchanged. Measured slower on this project's CPU (docs/benchmarks.md).
        checkpoint: an official SAM file or URL, loaded in :meth:`init_weights`
            (equivalently ``init_cfg=dict(type='Pretrained', checkpoint=...)``).
    """

    def __init__(self, arch: Union[str, dict] = 'vit_b', img_size: int = 1024,
                 patch_size: int = 16, in_channels: int = 3, window_size: Optional[int] = None,
                 mlp_ratio: float = 4.0, out_indices: Sequence[int] = (-1,), frozen: bool = True,
                 adapter_cfg: Union[dict, Sequence[dict], None] = None,
                 attn_adapter_cfg: Union[dict, Sequence[dict], None] = None,
                 qkv_adapter_cfg: Union[dict, Sequence[dict], None] = None,
                 prompt_cfg: Optional[dict] = None,
                 fused_attn: Union[bool, str] = True,
                 with_cp: Union[bool, Sequence[int]] = False, autocast_dtype: Optional[str] = None,
                 compile_blocks: Union[bool, dict] = False,
                 checkpoint: Optional[str] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        numbers = resolve_arch(arch)
        self.arch = arch
        self.embed_dims = numbers['embed_dims']
        self.depth = numbers['depth']
        window_size = window_size or numbers.get('window_size', 14)
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.img_size = img_size
        if fused_attn not in (True, False, 'global'):
            raise ValueError(f"fused_attn must be True, False or 'global', got {fused_attn!r}")
        self.fused_attn = fused_attn
        self.with_cp = with_cp
        self.cp_blocks = self._resolve_cp_blocks(with_cp, self.depth)
        resolve_autocast_dtype(autocast_dtype, 'cpu')  # checks the value
        self.autocast_dtype = autocast_dtype
        self.checkpoint = checkpoint
        self.out_indices = [i % self.depth for i in out_indices]
        grid = img_size // patch_size

        self.patch_embed = PatchEmbed(patch_size, in_channels, self.embed_dims)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, self.embed_dims))
        self.blocks = nn.ModuleList([
            SAMBlock(self.embed_dims, numbers['num_heads'], mlp_ratio=mlp_ratio,
                     window_size=0 if i in numbers['global_attn_indexes'] else window_size,
                     input_size=(grid, grid),
                     fused_attn=self._block_fused(fused_attn, i in numbers['global_attn_indexes']))
            for i in range(self.depth)
        ])
        # Everything built so far is SAM; anything attached later (adapters) is not.
        self._sam_keys = frozenset(self.state_dict())
        if frozen:
            for p in self.parameters():
                p.requires_grad = False
        # Attached after freezing, so the adapters stay trainable.
        self.adapter_cfg = copy.deepcopy(adapter_cfg)
        self.attn_adapter_cfg = copy.deepcopy(attn_adapter_cfg)
        self.qkv_adapter_cfg = copy.deepcopy(qkv_adapter_cfg)
        for slot, cfg in (('adapter', adapter_cfg), ('attn_adapter', attn_adapter_cfg),
                          ('attn.qkv', qkv_adapter_cfg)):
            if cfg is not None:
                from ..adapters import attach_adapters
                attach_adapters(self, cfg, slot=slot)
        self.compile_blocks = compile_blocks
        if compile_blocks:
            for blk in self.blocks:  # after the adapters: they are part of the compiled block
                blk.compile(**(compile_blocks if isinstance(compile_blocks, dict) else {}))
        self.prompt_cfg = copy.deepcopy(prompt_cfg)
        self.prompt_tokens: Optional[nn.Module] = None
        if prompt_cfg is not None:
            from ..adapters import EncoderPromptTokens  # noqa: F401  (registers the type)
            cfg = copy.deepcopy(prompt_cfg)
            cfg.setdefault('embed_dims', self.embed_dims)
            cfg.setdefault('num_blocks', self.depth)
            self.prompt_tokens = MODELS.build(cfg)

    def is_sam_key(self, key: str) -> bool:
        """Whether a state-dict key is one of SAM's (as opposed to an adapter's)."""
        return key in self._sam_keys

    @staticmethod
    def block_adapters(block: nn.Module) -> Tuple[nn.Module, ...]:
        """The adapters a block carries, in any slot (``attn.qkv`` when wrapped, ``attn_adapter``,
        ``adapter``)."""
        qkv = block.attn.qkv if hasattr(block.attn.qkv, 'wrap') else None
        return tuple(a for a in (qkv, block.attn_adapter, block.adapter) if a is not None)

    @property
    def first_conditioned_block(self) -> Optional[int]:
        """Index of the first block with an adapter (either slot) reading ``text_embeds``.

        An adapter reads it when its ``conditioned`` attribute is true (a class
        flag, or per instance as in :class:`SemanticAdapter`).

        None if none does. Blocks before it compute the same thing for every
        class of an image, so a class-prompted segmentor runs them once per image.
        """
        return next((i for i, b in enumerate(self.blocks)
                     if any(getattr(a, 'conditioned', False) for a in self.block_adapters(b))),
                    None)

    @staticmethod
    def _block_fused(fused_attn, is_global: bool):
        """A block's ``RelPosAttention(fused=...)`` for the encoder's ``fused_attn``."""
        if fused_attn == 'global':
            return True if is_global else 'no_grad'
        return fused_attn

    @staticmethod
    def _resolve_cp_blocks(with_cp, depth: int) -> frozenset:
        """The block indices that ``with_cp`` checkpoints."""
        if isinstance(with_cp, bool):
            return frozenset(range(depth)) if with_cp else frozenset()
        try:
            indices = [int(i) for i in with_cp]
        except (TypeError, ValueError):
            raise ValueError(f'with_cp must be True, False or a list of block indices, got {with_cp!r}')
        bad = [i for i in indices if not -depth <= i < depth]
        if bad:
            raise ValueError(f'with_cp: block indices {bad} out of range for {depth} blocks')
        return frozenset(i % depth for i in indices)

    @property
    def is_conditioned(self) -> bool:
        """Whether any attached adapter reads the per-sample conditioning (``text_embeds``)."""
        return self.first_conditioned_block is not None

    def autocast(self, device_type: str):
        """The autocast context of ``autocast_dtype`` (disabled when it is None)."""
        return autocast_context(self.autocast_dtype, device_type)

    @property
    def is_adapted(self) -> bool:
        """Whether any block carries an adapter in either slot (the encoder is then not plain SAM)."""
        return any(self.block_adapters(b) for b in self.blocks)

    @property
    def has_prompt_tokens(self) -> bool:
        """Whether visual prompt tokens join the blocks' sequences (``prompt_cfg``)."""
        return self.prompt_tokens is not None

    def init_weights(self) -> None:
        """Load SAM's encoder weights from ``checkpoint`` / a ``Pretrained`` init_cfg."""
        checkpoint = sam_checkpoint_of(self)
        if checkpoint is None:
            super().init_weights()
            return
        load_sam_part(self, checkpoint, 'image_encoder.', exclude=('neck.',),
                      is_extra=lambda k: not self.is_sam_key(k))
        self._is_init = True

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """(1, h, w, C) absolute position embedding for an h x w token grid."""
        if self.pos_embed.shape[1:3] == (h, w):
            return self.pos_embed
        pe = F.interpolate(self.pos_embed.permute(0, 3, 1, 2), size=(h, w), mode='bicubic',
                           align_corners=False)
        return pe.permute(0, 2, 3, 1)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for an input that is not a (B, C, H, W) batch of this encoder."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'SAMImageEncoder expects a (B, {self.in_channels}, H, W) batch, '
                             f'got shape {tuple(x.shape)}')
        if x.shape[2] < self.patch_size or x.shape[3] < self.patch_size:
            raise ValueError(f'image {tuple(x.shape[2:])} is smaller than one {self.patch_size}px patch')

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with position: (B, C, H, W) -> (B, H/16, W/16, embed_dims)."""
        self.check_input(x)
        # float32 even under an outer autocast: < 1 % of the encoder's FLOPs, and a
        # bf16 convolution on the CPU takes a large oneDNN scratch buffer (771 MiB
        # for one 512 x 512 image at ViT-B), the peak of a whole training step.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = self.patch_embed(x.float())
        x = x + self._pos_embed(x.shape[1], x.shape[2])
        dtype = resolve_autocast_dtype(self.autocast_dtype, x.device.type)
        return x if dtype is None else x.to(dtype)  # the residual stream in the autocast dtype

    def run_blocks(self, x: torch.Tensor, text_embeds: Any = None, start: int = 0,
                   end: Optional[int] = None) -> Tuple[torch.Tensor, list]:
        """Run blocks ``start:end`` on tokens x (B, h, w, C); returns x and the outputs at out_indices.

        Prompt tokens carried from blocks before ``start`` are not kept: to split
        the blocks of an encoder with prompt tokens, use :meth:`run_prompted_blocks`.
        """
        x, _, outs = self.run_prompted_blocks(x, text_embeds, start, end)
        return x, outs

    def run_prompted_blocks(self, x: torch.Tensor, text_embeds: Any = None, start: int = 0,
                            end: Optional[int] = None, prompts: Optional[torch.Tensor] = None
                            ) -> Tuple[torch.Tensor, Optional[torch.Tensor], list]:
        """Run blocks ``start:end`` with the prompt tokens of ``prompt_tokens``.

        Args:
            x: (B, h, w, C) tokens.
            text_embeds: conditioning for the adapters, e.g. (B, D) or a
                :class:`CLIPCondition`, handed to each block unchanged.
            prompts: (B, P, C) prompt tokens put out by block ``start - 1``, or None.

        Returns:
            x (B, h, w, C), the prompt tokens put out by the last block run
            ((B, P, C) or None) and the (B, C, h, w) outputs at ``out_indices``.
        """
        outs = []
        end = self.depth if end is None else end
        with self.autocast(x.device.type):
            for i in range(start, end):
                blk = self.blocks[i]
                if self.prompt_tokens is not None:
                    prompts = self.prompt_tokens(i, prompts, x.shape[0])
                args = (x, text_embeds) if prompts is None else (x, text_embeds, prompts)
                if i in self.cp_blocks and self.training and torch.is_grad_enabled():
                    out = cp.checkpoint(blk, *args, use_reentrant=False)
                else:
                    out = blk(*args)
                x, prompts = (out, None) if prompts is None else out
                if i in self.out_indices:
                    outs.append(x.permute(0, 3, 1, 2).float().contiguous())
        return x, prompts, outs

    def forward(self, x: torch.Tensor, text_embeds: Any = None) -> Tuple[torch.Tensor, ...]:
        """Encode images.

        Args:
            x: (B, 3, H, W) images, normalised as SAM expects.
            text_embeds: per-sample conditioning handed unchanged to every block's
                adapters: (B, D) CLIP text embeddings, a :class:`CLIPCondition`
                (text, vision and similarity tokens of CLIP-Guided SAM), or
                ``None`` for unconditioned adapters.

        Returns:
            One (B, embed_dims, H/16, W/16) map per ``out_indices`` entry.
        """
        _, outs = self.run_blocks(self.embed(x), text_embeds)
        return tuple(outs)
