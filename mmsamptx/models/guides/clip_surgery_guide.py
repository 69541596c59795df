"""CLIP guide of CLIP-Guided SAM: CLIPSurgery image tokens, class text and similarity prompts.

CLIP-Guided SAM (arXiv 2605.24807; docs/methods/clip-guided-sam.md §1–§2, §4)
asks CLIP, for every (image, class) sample, for a text feature t, per-token
vision features V̂, their similarity s = V̂·t, the fusion U = V̂ + s that its
semantic adapters read, and two prompts for SAM derived from a min–max
similarity map (a region to draw points from and a dense 0/255 mask prompt).
:class:`CLIPSurgeryGuide` computes all of them from one open_clip ViT whose
last blocks run CLIPSurgery's dual path (arXiv 2304.05653).
"""
import logging
import os
import os.path as osp
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import open_clip
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from open_clip import pretrained as oc_pretrained
from open_clip.factory import load_state_dict as oc_load_state_dict
from open_clip.transformer import ResidualAttentionBlock, VisionTransformer
from torch import Tensor, nn

from mmseg.registry import MODELS
from ..text_encoders import OpenCLIPTextEncoder
from ..text_encoders.open_clip_text_encoder import _DropRandomInitNotice
from ...utils import atomic_torch_save

NORMS = ('tokens', 'channels')


@dataclass
class CLIPGuidance:
    """What the CLIP guide gives one batch of M (image, class) samples.

    Cc is CLIP's joint width (512 for ViT-B/16), N = h·w the patch tokens of
    the ``grid`` (1024 = 32·32 at a 512² CLIP input), (H, W) the size of the
    images given to the guide (SAM's 1024²). Token axes hold CLS first, then
    the N patches row-major.

    Attributes:
        text: (M, Cc) t, the unit text feature of each sample's class.
        vision: (M, 1+N, Cc) V̂, the normalised CLIPSurgery tokens.
        similarity: (M, 1+N, 1) s = V̂·t, CLS row included, not min–max'd.
        fused: (M, 1+N, Cc) U = V̂ + s, broadcast over channels (§2.5).
        sim_map: (M, 1, H, W) S, min–max over the N patch scores, upsampled.
        point_region: (M, 1, H, W) bool, S > threshold (where points are drawn).
        dense_prompt: (M, 1, H/4, W/4) float in {0, 255}, SAM's ``mask_inputs``.
        grid: (h, w) patch grid of the N tokens.
    """

    text: Tensor
    vision: Tensor
    similarity: Tensor
    fused: Tensor
    sim_map: Tensor
    point_region: Tensor
    dense_prompt: Tensor
    grid: Tuple[int, int]


@MODELS.register_module()
class CLIPSurgeryGuide(BaseModule):
    """CLIPSurgery ViT plus a text encoder that turn (image, class) samples into CLIP guidance.

    **Vision** (clip-guided-sam.md §2.1–2.2). The input is SAM's normalised
    image (B, 3, H, W). It is bilinearly resized (align_corners False) to
    ``clip_size``² and fed to the open_clip ViT **without CLIP's own mean/std**:
    the authors' code hands CLIP the ImageNet-normalised SAM tensor, and so
    does this module. The positional embedding's patch part is bilinearly
    interpolated from the checkpoint's grid (14² at 224) to the new grid (32²
    at 512), CLS entry kept; it is computed in every forward from the stored
    table, which keeps its checkpoint shape, so official open_clip keys
    (``visual.*``) load as they are. In the last ``surgery_blocks`` blocks the
    tokens y entering the first of them run two paths, x_ori = x_s = y::

        h = LN1(x_ori);  q, k, v = in_proj(h)                (per head, d = head dim)
        o = out_proj(softmax(q kᵀ/√d) v)                    the block's attention
        z = out_proj(softmax(v vᵀ/√d) v)                    CLIPSurgery's v–v attention
        x_ori = x_ori + o;  x_ori = x_ori + MLP(LN2(x_ori))
        x_s   = x_s + z                                      (no MLP on this path)

    E = (x_s with its CLS row taken from x_ori) → ``ln_post`` → ``· proj``, on
    every token: (B, 1+N, Cc). ``surgery_blocks=0`` gives plain CLIP tokens.
    Blocks with layer scale apply ``ls_1`` to both o and z and ``ls_2`` to the
    MLP [D: the authors' OpenAI ViT has no layer scale].

    **Text** (§2.3, samptx-authors.md §5). t comes from an
    :class:`OpenCLIPTextEncoder`; by default the authors' chain on the same
    model: the bare class name, t = (t_raw − r)/‖t_raw − r‖ with r the unit
    mean of the empty prompt through the redundant templates. The encoder's
    default redundant templates are open_clip's 80 ImageNet ones, not CLIP
    Surgery's 85; pass ``text_cfg=dict(redundant_templates=[...])`` for those.
    t is computed once per class name and cached (the encoder's memory cache),
    r once per weights.

    **Similarity** (§2.4–2.6). ``norm='tokens'`` (the authors' code,
    ``--norm_dim 1``): V̂ = E/‖E‖ with the norm over the **token** axis (all
    1+N tokens, CLS included), so s = V̂·t is not a cosine. ``norm='channels'``
    (the paper's Eq. 1): V̂ = E/‖E‖ over channels, s a per-token cosine. Then
    U = V̂ + s; S = min–max of the N patch scores of each sample (no ε: a map
    with all scores equal is NaN), reshaped to the grid and bilinearly resized
    to (H, W); point region S > ``threshold``; dense prompt
    255·[bilinear(S → (H/4, W/4)) > ``threshold``], resized from the full-size
    S as the code does. The maximum patch always gives pixels above the
    threshold once the map is upsampled (§2.6 [D]).

    **Trainable parts** (§4). Everything is frozen except, with
    ``finetune_attn_blocks=C``, the visual attention of the last C blocks:
    ``visual.transformer.resblocks.{i}.attn.{in_proj_weight, in_proj_bias,
    out_proj.weight, out_proj.bias}``, 2,362,368 per ViT-B/16 block
    (28,348,416 for C = 12). The authors train them at lr 1e-7 without weight
    decay; a config reaches them with ``paramwise_cfg=dict(custom_keys={
    'visual.transformer.resblocks': dict(lr_mult=1e-7 / base_lr,
    decay_mult=0.)})``. The text tower stays frozen (the authors' trainable
    text positional embedding, §4, is not reproduced).

    Building never reads the disk or the network: the model is built with
    random weights and ``pretrained`` is loaded by :meth:`init_weights`.

    Args:
        model_name (str): An open_clip ViT name (``open_clip.list_models()``),
            e.g. ``'ViT-B-16-quickgelu'`` (the OpenAI weights were trained with
            QuickGELU), or ``'mmsamptx-tiny-clip'`` for tests.
        pretrained (str, optional): open_clip tag or checkpoint path (open_clip
            key format, ``visual.*``) loaded in :meth:`init_weights`; None keeps
            random weights. Defaults to ``'openai'``.
        clip_size (int): Side of CLIP's square input; a multiple of the patch
            size. Defaults to 512.
        surgery_blocks (int): Last blocks that run the dual path; 0 is plain
            CLIP. Defaults to 6.
        norm (str): ``'tokens'`` (the code's) or ``'channels'`` (the paper's).
            Defaults to ``'tokens'``.
        threshold (float): Threshold on S for the point region and the dense
            prompt. Defaults to 0.8.
        finetune_attn_blocks (int): Last blocks whose visual attention is
            trainable; 0 freezes all. Defaults to 0.
        text_cfg (dict or OpenCLIPTextEncoder, optional): A built encoder, or
            options that override the default encoder config (the authors'
            chain on ``model_name``/``pretrained``). Defaults to None.
        expected_dims (int, optional): If given, CLIP's joint width Cc must
            equal it (e.g. the adapters' input width). Defaults to None.
        init_cfg (dict or list[dict], optional): mmengine init config, applied
            before ``pretrained``. Defaults to None.
    """

    def __init__(self,
                 model_name: str = 'ViT-B-16-quickgelu',
                 pretrained: Optional[str] = 'openai',
                 clip_size: int = 512,
                 surgery_blocks: int = 6,
                 norm: str = 'tokens',
                 threshold: float = 0.8,
                 finetune_attn_blocks: int = 0,
                 text_cfg: Union[dict, OpenCLIPTextEncoder, None] = None,
                 expected_dims: Optional[int] = None,
                 text_features: Optional[str] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        # The text encoder's checks list the valid names and tags when one is
        # unknown, and refuse what cannot be built offline.
        OpenCLIPTextEncoder._check_model_name(model_name)
        self._pretrained_kind = OpenCLIPTextEncoder._check_pretrained(model_name, pretrained)
        self.model_name = model_name
        self.pretrained = pretrained
        # Deployment (Table 1 of the paper: SAM + CLIP vision): t of every class read from a file
        # written by export_text_features(); the text tower is not built at all.
        self.text_features = None if text_features is None else str(text_features)
        self._text_table: Optional[dict] = None
        self.text_encoder = None
        if self.text_features is None:
            self.text_encoder = self._build_text_encoder(model_name, pretrained, text_cfg)
        elif text_cfg is not None:
            raise ValueError('text_features reads t from a file and builds no text tower: '
                             'text_cfg is not used with it; remove one of the two')

        log_filter = _DropRandomInitNotice()
        logging.getLogger().addFilter(log_filter)
        try:
            clip = open_clip.create_model(
                model_name, pretrained=None, pretrained_image=False, pretrained_text=False,
                # on torch's current default device, so a build under
                # `with torch.device('meta')` counts parameters without memory
                device=torch.empty(()).device)
        finally:
            logging.getLogger().removeFilter(log_filter)
        self.visual = self._check_visual(model_name, clip.visual)
        del clip

        blocks = self.visual.transformer.resblocks
        self.patch_size = self.visual.patch_size[0]
        self.pretrained_grid = tuple(self.visual.grid_size)
        self.embed_dim = self.visual.proj.shape[1]
        if self.text_encoder is not None and self.text_encoder.embed_dim != self.embed_dim:
            raise ValueError(
                f'The text encoder gives {self.text_encoder.embed_dim}-d features but the '
                f'visual tower of {model_name!r} projects to {self.embed_dim}; build both '
                'from the same CLIP.')
        if expected_dims is not None and expected_dims != self.embed_dim:
            raise ValueError(
                f'expected_dims={expected_dims} but {model_name!r} has a joint width of '
                f'{self.embed_dim}; choose a CLIP of width {expected_dims} or change '
                'expected_dims.')
        self.clip_size = self._check_int('clip_size', clip_size, low=1)
        if clip_size % self.patch_size:
            raise ValueError(
                f'clip_size={clip_size} is not divisible by the patch size '
                f'{self.patch_size} of {model_name!r}, so the patch grid cannot take it; '
                f'use a multiple of {self.patch_size} (e.g. '
                f'{clip_size // self.patch_size * self.patch_size or self.patch_size}).')
        self.grid = (clip_size // self.patch_size, ) * 2
        self.surgery_blocks = self._check_int(
            'surgery_blocks', surgery_blocks, low=0, high=len(blocks))
        self.finetune_attn_blocks = self._check_int(
            'finetune_attn_blocks', finetune_attn_blocks, low=0, high=len(blocks))
        if norm not in NORMS:
            raise ValueError(f'norm={norm!r} is not one of {NORMS}.')
        self.norm = norm
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not 0.0 <= threshold < 1.0:
            raise ValueError(f'threshold={threshold!r} must be a number in [0, 1).')
        self.threshold = float(threshold)
        self._loaded_source = 'random-init'

        self.requires_grad_(False)
        for block in blocks[len(blocks) - self.finetune_attn_blocks:]:
            block.attn.requires_grad_(True)
        self.visual.eval()

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_int(option, value, low, high=None):
        if isinstance(value, bool) or not isinstance(value, int) or value < low \
                or (high is not None and value > high):
            expected = f'an int in [{low}, {high}]' if high is not None else f'an int >= {low}'
            raise ValueError(f'{option}={value!r} must be {expected}.')
        return value

    @staticmethod
    def _build_text_encoder(model_name, pretrained, text_cfg) -> OpenCLIPTextEncoder:
        if isinstance(text_cfg, OpenCLIPTextEncoder):
            return text_cfg
        if text_cfg is not None and not isinstance(text_cfg, dict):
            raise TypeError(
                f'text_cfg must be None, a dict of OpenCLIPTextEncoder options or an '
                f'OpenCLIPTextEncoder, got {type(text_cfg).__name__}.')
        # The authors' chain (samptx-authors.md §5.5): bare name, raw mean,
        # redundant feature subtracted, L2-normalised.
        cfg = dict(type='OpenCLIPTextEncoder', model_name=model_name, pretrained=pretrained,
                   templates=('{}', ), ensemble_normalize=False, subtract_redundant=True,
                   normalize=True)
        cfg.update(text_cfg or {})
        encoder = MODELS.build(cfg)
        if not isinstance(encoder, OpenCLIPTextEncoder):
            raise TypeError(f'text_cfg must build an OpenCLIPTextEncoder, got '
                            f'{type(encoder).__name__}.')
        return encoder

    @staticmethod
    def _check_visual(model_name, visual) -> VisionTransformer:
        """Return ``visual`` if the dual path can run on it; raise naming what is unsupported."""
        if not isinstance(visual, VisionTransformer):
            raise ValueError(
                f'{model_name!r} has a {type(visual).__name__} image tower; CLIPSurgeryGuide '
                'needs an open_clip VisionTransformer (a ViT name such as ViT-B-16-quickgelu).')
        unsupported = []
        if visual.attn_pool is not None:
            unsupported.append('attentional pooling')
        if not isinstance(visual.patch_dropout, nn.Identity):
            unsupported.append('patch dropout')
        if visual.patch_size[0] != visual.patch_size[1] or visual.grid_size[0] != visual.grid_size[1]:
            unsupported.append(f'non-square patches/grid {visual.patch_size}/{visual.grid_size}')
        if visual.proj is None:
            unsupported.append('no output projection')
        for i, block in enumerate(visual.transformer.resblocks):
            if not isinstance(block, ResidualAttentionBlock) or \
                    not isinstance(block.attn, nn.MultiheadAttention):
                unsupported.append(f'block {i} is a {type(block).__name__} (custom attention '
                                   'options such as qk_norm or scaled cosine attention)')
                break
            if not block.attn.batch_first or not block.attn._qkv_same_embed_dim \
                    or block.attn.in_proj_bias is None:
                unsupported.append(f'block {i} attention is not batch-first with a biased '
                                   'joint in_proj')
                break
        if unsupported:
            raise ValueError(f'CLIPSurgeryGuide cannot run {model_name!r}: '
                             + '; '.join(unsupported) + '.')
        return visual

    # ----------------------------------------------------------------- weights
    def init_weights(self):
        """Apply ``init_cfg``, load the text encoder's weights, then ``pretrained`` into the ViT.

        The checkpoint is read in open_clip's key format; its ``visual.*`` keys
        must match the visual tower exactly (a mismatch names the first bad key
        and both shapes).

        Raises:
            FileNotFoundError: ``pretrained`` is a path and no file is there.
            RuntimeError: a tag could not be downloaded, or the checkpoint does
                not fit ``model_name``.
        """
        first_call = not self._is_init
        super().init_weights()  # also runs the text encoder's init_weights
        if not first_call or self.pretrained is None:
            return
        try:
            self._load_visual(self._resolve_checkpoint())
        except BaseException:
            self._is_init = False
            raise
        self._loaded_source = f'{self._pretrained_kind}:{self.pretrained}'

    def _resolve_checkpoint(self) -> str:
        if self._pretrained_kind == 'file':
            path = osp.abspath(osp.expanduser(os.fspath(self.pretrained)))
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'pretrained checkpoint not found: {self.pretrained!r} (resolved to '
                    f'{path!r}) for CLIPSurgeryGuide model_name={self.model_name!r}.')
            return path
        cfg = oc_pretrained.get_pretrained_cfg(self.model_name, self.pretrained)
        try:
            path = oc_pretrained.download_pretrained(cfg)
        except Exception as e:
            raise RuntimeError(
                f'Could not download open_clip weights for model_name={self.model_name!r}, '
                f'pretrained={self.pretrained!r} ({type(e).__name__}: {e}). If this machine '
                'is offline, copy the open_clip checkpoint here and pass its path as '
                'pretrained=.') from e
        if not path or not osp.isfile(path):
            raise RuntimeError(f'open_clip returned no weights file for {self.model_name!r}, '
                               f'pretrained={self.pretrained!r}; pass a local path.')
        return path

    def _load_visual(self, path: str):
        try:
            state = oc_load_state_dict(path, device='cpu', weights_only=True)
        except Exception as e:
            raise RuntimeError(f'Could not read open_clip checkpoint {path!r}: '
                               f'{type(e).__name__}: {e}') from e
        visual = {k[len('visual.'):]: v for k, v in state.items() if k.startswith('visual.')}
        own = self.visual.state_dict()
        for key, value in own.items():
            if key not in visual:
                raise RuntimeError(f'Checkpoint {path!r} lacks visual.{key} needed by '
                                   f'{self.model_name!r}.')
            if visual[key].shape != value.shape:
                raise RuntimeError(
                    f'Checkpoint {path!r}: visual.{key} has shape {tuple(visual[key].shape)}, '
                    f'{self.model_name!r} expects {tuple(value.shape)}.')
        extra = sorted(set(visual) - set(own))
        if extra:
            raise RuntimeError(f'Checkpoint {path!r} has visual keys that {self.model_name!r} '
                               f'does not: visual.{extra[0]} (and {len(extra) - 1} more).')
        self.visual.load_state_dict(visual, strict=True)

    def train(self, mode: bool = True):
        """Set ``mode`` on this module; the ViT has no train-only layers and stays in eval mode."""
        super().train(mode)
        self.visual.eval()
        return self

    # ------------------------------------------------------------------ vision
    def positional_embedding(self) -> Tensor:
        """The positional table for ``clip_size``: (1 + h·w, width), CLS first.

        The stored table's patch part is bilinearly interpolated (align_corners
        False) from the checkpoint grid to ``self.grid``; the stored parameter
        is never changed.
        """
        table = self.visual.positional_embedding
        if self.grid == self.pretrained_grid:
            return table
        gh, gw = self.pretrained_grid
        patches = table[1:].reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=self.grid, mode='bilinear', align_corners=False)
        patches = patches.permute(0, 2, 3, 1).reshape(self.grid[0] * self.grid[1], -1)
        return torch.cat([table[:1], patches], dim=0)

    def encode_image(self, images: Tensor) -> Tensor:
        """CLIPSurgery tokens E of SAM-normalised images.

        Args:
            images: (B, 3, H, W), SAM's normalised input (resized here to
                ``clip_size``²; CLIP's mean/std are not applied).

        Returns:
            Tensor: E, (B, 1 + h·w, Cc), CLS first, after ``ln_post`` and ``proj``.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f'images must be (B, 3, H, W), got {tuple(images.shape)}.')
        visual = self.visual
        size = (self.clip_size, self.clip_size)
        x = images if tuple(images.shape[-2:]) == size else F.interpolate(
            images, size=size, mode='bilinear', align_corners=False)
        x = visual.conv1(x.to(visual.conv1.weight.dtype))  # (B, width, h, w)
        x = x.flatten(2).transpose(1, 2)  # (B, h·w, width)
        cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding().to(x.dtype)
        x = visual.ln_pre(x)

        blocks = visual.transformer.resblocks
        first_surgery = len(blocks) - self.surgery_blocks
        for block in blocks[:first_surgery]:
            x = block(x)
        x_ori, x_s = x, x
        for block in blocks[first_surgery:]:
            o, z = self._dual_attention(block.attn, block.ln_1(x_ori))
            x_s = x_s + block.ls_1(z)
            x_ori = x_ori + block.ls_1(o)
            x_ori = x_ori + block.ls_2(block.mlp(block.ln_2(x_ori)))
        x = torch.cat([x_ori[:, :1], x_s[:, 1:]], dim=1)
        return visual.ln_post(x) @ visual.proj

    @staticmethod
    def _dual_attention(attn: nn.MultiheadAttention, h: Tensor) -> Tuple[Tensor, Tensor]:
        """The block's q–k attention and CLIPSurgery's v–v attention, from one in_proj.

        Args:
            attn: the block's own attention module (its weights are used as they are).
            h: (B, L, width), the normalised tokens.

        Returns:
            (o, z): (B, L, width) each, o = out_proj(softmax(q kᵀ/√d) v) and
            z = out_proj(softmax(v vᵀ/√d) v).
        """
        b, n, width = h.shape
        heads = attn.num_heads
        qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)
        q, k, v = (t.reshape(b, n, heads, width // heads).transpose(1, 2)
                   for t in qkv.chunk(3, dim=-1))  # (B, heads, L, d) each
        o = F.scaled_dot_product_attention(q, k, v)
        z = F.scaled_dot_product_attention(v, v, v)
        o, z = (t.transpose(1, 2).reshape(b, n, width) for t in (o, z))
        return attn.out_proj(o), attn.out_proj(z)

    # -------------------------------------------------------------------- text
    def encode_text(self, class_names: Sequence[str]) -> Tensor:
        """t of each class name, (M, Cc) on the guide's device; each class computed once.

        Every distinct name is encoded on its own, so the text encoder's cache
        holds one entry per class whatever the batches look like.
        """
        names = OpenCLIPTextEncoder._check_class_names(class_names)
        if self.text_encoder is None:
            return self._lookup_text(names)
        unique = {name: self.text_encoder.encode([name]) for name in dict.fromkeys(names)}
        return torch.cat([unique[name] for name in names]).to(self.visual.proj.device)

    def export_text_features(self, class_names: Sequence[str], path: str) -> str:
        """Write t of every class name to ``path`` (atomically) for ``text_features=path``.

        The file holds ``{'model_name', 'embed_dim', 'features': {name: (Cc,) float32}}``
        and loads with ``torch.load(weights_only=True)``. Returns ``path``.
        """
        names = OpenCLIPTextEncoder._check_class_names(class_names)
        with torch.no_grad():
            feats = self.encode_text(names).float().cpu()
        table = {name: feats[i].clone() for i, name in enumerate(names)}
        atomic_torch_save(dict(model_name=self.model_name, embed_dim=self.embed_dim,
                               features=table), path)
        return path

    def _lookup_text(self, names: Sequence[str]) -> Tensor:
        """(M, Cc) rows of the ``text_features`` file; read once, on first use."""
        if self._text_table is None:
            path = self.text_features
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'text_features file {path} does not exist; write it with '
                    'CLIPSurgeryGuide.export_text_features(class_names, path) on a model '
                    'with its text tower')
            data = torch.load(path, map_location='cpu', weights_only=True)
            if not isinstance(data, dict) or not isinstance(data.get('features'), dict):
                raise ValueError(f'{path} is not a text-features file of export_text_features()')
            if data.get('embed_dim') != self.embed_dim:
                raise ValueError(f'{path} holds {data.get("embed_dim")}-d text features of '
                                 f'{data.get("model_name")!r}, but {self.model_name!r} projects '
                                 f'to {self.embed_dim}')
            self._text_table = data['features']
        missing = [n for n in dict.fromkeys(names) if n not in self._text_table]
        if missing:
            raise KeyError(f'no text feature for {missing[0]!r} in {self.text_features} (it holds '
                           f'{len(self._text_table)} classes); export it with '
                           'export_text_features() on a model with its text tower')
        return torch.stack([self._text_table[n] for n in names]).to(self.visual.proj.device)

    # ----------------------------------------------------------------- forward
    def forward(self,
                images: Tensor,
                text: Union[Tensor, Sequence[str]],
                img_index: Optional[Tensor] = None,
                tokens: Optional[Tensor] = None) -> CLIPGuidance:
        """CLIP guidance for M (image, class) samples; E is computed once per image.

        Args:
            images: (B, 3, H, W) SAM-normalised images, H and W multiples of 4.
            text: (M, Cc) text features t (from :meth:`encode_text`), or M
                class names.
            img_index: (M,) long, the image of each sample; None means M = B
                and sample i is image i.
            tokens: (B, 1+N, Cc) :meth:`encode_image` of ``images`` when the caller
                already has it (e.g. several class chunks of one image), else None.

        Returns:
            CLIPGuidance: see its docstring for the fields and shapes.
        """
        b, _, height, width = images.shape
        if height % 4 or width % 4:
            raise ValueError(f'images are {height}x{width}; the dense prompt is a quarter of '
                             'the size, so both sides must be multiples of 4.')
        if not isinstance(text, Tensor):
            text = self.encode_text(text)
        m = text.shape[0]
        if text.dim() != 2 or text.shape[1] != self.embed_dim:
            raise ValueError(f'text must be (M, {self.embed_dim}), got {tuple(text.shape)}.')
        if img_index is None:
            if m != b:
                raise ValueError(f'{m} text features for {b} images; pass img_index (M,) to '
                                 'map samples to images.')
            img_index = torch.arange(b, device=images.device)
        elif img_index.shape != (m, ):
            raise ValueError(f'img_index must be ({m},), got {tuple(img_index.shape)}.')
        elif m and (img_index.min() < 0 or img_index.max() >= b):
            raise ValueError(f'img_index values must lie in [0, {b}), got '
                             f'[{int(img_index.min())}, {int(img_index.max())}].')

        if tokens is None:
            tokens = self.encode_image(images)  # (B, 1+N, Cc)
        vision = self.normalize_tokens(tokens)[img_index]  # (M, 1+N, Cc)
        similarity = vision @ text.to(vision.dtype).unsqueeze(-1)  # (M, 1+N, 1)
        sim_map = self.similarity_map(similarity, (height, width))
        dense = F.interpolate(sim_map, size=(height // 4, width // 4), mode='bilinear',
                              align_corners=False)
        return CLIPGuidance(
            text=text,
            vision=vision,
            similarity=similarity,
            fused=vision + similarity,
            sim_map=sim_map,
            point_region=sim_map > self.threshold,
            dense_prompt=(dense > self.threshold).to(sim_map.dtype) * 255.0,
            grid=self.grid)

    def normalize_tokens(self, tokens: Tensor) -> Tensor:
        """V̂ from E (B, 1+N, Cc): L2 over the token axis (``'tokens'``) or channels."""
        return F.normalize(tokens, dim=1 if self.norm == 'tokens' else -1, eps=0.0)

    def similarity_map(self, similarity: Tensor, size: Tuple[int, int]) -> Tensor:
        """S: min–max over the N patch scores of each sample, on the grid, resized to ``size``.

        Args:
            similarity: (M, 1+N, 1) s, CLS row first (dropped here).
            size: (H, W) of the output.

        Returns:
            Tensor: (M, 1, H, W) in [0, 1]; no ε, so a constant map gives NaN.
        """
        patches = similarity[:, 1:, 0]  # (M, N)
        low = patches.min(dim=1, keepdim=True).values
        high = patches.max(dim=1, keepdim=True).values
        patches = (patches - low) / (high - low)
        grid = patches.reshape(-1, 1, *self.grid)
        return F.interpolate(grid, size=size, mode='bilinear', align_corners=False)

    def extra_repr(self) -> str:
        return (f'model_name={self.model_name!r}, pretrained={self.pretrained!r}, '
                f'clip_size={self.clip_size}, grid={self.grid}, '
                f'surgery_blocks={self.surgery_blocks}, norm={self.norm!r}, '
                f'threshold={self.threshold}, finetune_attn_blocks={self.finetune_attn_blocks}')
