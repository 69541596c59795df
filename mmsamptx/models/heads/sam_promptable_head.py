"""A promptable SAM head: prompt encoder + mask decoder, prompted by points, boxes and/or text."""
import functools
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torchvision.ops import sigmoid_focal_loss

from ..losses import SoftIoULoss
from ..utils.precision import autocast_context
from ..utils.sam_checkpoint import load_sam_part, sam_checkpoint_of
from .sam_mask_decoder import SAMMaskDecoder
from .sam_prompt_encoder import SAMPromptEncoder
from .text_cross_attention import TextCrossAttention
from .text_prompt_token import TextPromptToken

TEXT_INJECTIONS = (None, 'prompt', 'decoder', 'prompt_encoder', 'decoder_cross_attn')
LOSS_TERMS = ('mask', 'dice', 'iou', 'soft_iou')
LOSS_SIZES = ('input', 'mask')
HEAD_AUTOCAST_DTYPES = (None, 'auto', 'bfloat16')


@MODELS.register_module()
class SAMPromptableHead(BaseModule):
    """SAM's prompt encoder and mask decoder, with optional text prompts, and SAM's losses.

    Text can enter here (besides the encoder's adapters), as the two
    alternatives SAM-PTx compares against (arXiv 2508.00213, Sec. 4). In the
    authors' form (docs/methods/samptx-authors.md §3.7, §3.8):
    ``text_injection='prompt_encoder'`` appends a :class:`TextPromptToken` (bias-free
    projection + text-type embedding; a learned no-text token without text) after
    SAM's sparse tokens; ``'decoder_cross_attn'`` lets the decoder's tokens attend to
    the projected text in a :class:`TextCrossAttention` block before the two-way
    transformer. Our earlier designs remain: ``'prompt'`` appends ``Linear(D, C)(t)``
    (with bias) as one more sparse token; ``'decoder'`` adds it as an extra output
    token of the mask decoder, whose output refines every mask token. The text
    modules are new parameters and train whatever ``frozen_prompt_encoder`` and
    ``frozen_decoder`` say.

    Args:
        image_size, patch_size: the encoder's input side and patch (sizes the prompt encoder).
        embed_dims: SAM's prompt / decoder width (256).
        decoder: extra arguments of :class:`SAMMaskDecoder`.
        multimask_output: predict SAM's 3 masks and train the best one (by loss)
            instead of the single-mask output.
        text_injection: ``None``, ``'prompt_encoder'``, ``'decoder_cross_attn'`` (the
            authors' baselines), ``'prompt'`` or ``'decoder'`` (ours, earlier).
        text_dims: width of the text embeddings (with ``text_injection``).
        prompt_cfg: learnable decoder prompt tokens appended to the sparse prompt
            embeddings, e.g. ``dict(type='DecoderPromptTokens', num_tokens=8)``
            (PTSAM); ``embed_dims`` is filled in. With no user prompt they alone
            drive the decoder. ``None`` for none.
        frozen_prompt_encoder, frozen_decoder: freeze SAM's modules here.
        mask_loss: ``'focal'`` (SAM's) or ``'bce'`` on mask logits.
        loss_weights: weights of the terms ``mask`` (focal / BCE), ``dice``, ``iou``
            (MSE of the predicted IoU) and ``soft_iou``; default SAM's 20, 1, 1 and 0.
            With an ``iou`` weight of 0 the IoU MSE is not computed and ``loss_iou`` is
            exactly 0 (``0 * sum(iou_pred)``: every configuration logs the same SAM
            terms, and the IoU head stays in the graph with a zero gradient, as DDP
            without ``find_unused_parameters`` needs);
            ``loss_soft_iou`` exists only with a nonzero weight. The SAM-PTx authors'
            loss (§6.5) is
            ``mask_loss='bce', loss_weights=dict(mask=1, dice=1, iou=0, soft_iou=1),
            dice_eps=1e-6`` with ``loss_size='mask'``.
        dice_eps: eps of mmseg's naive Dice, ``1 - (2 sum(pg) + eps) / (sum(p) + sum(g) + eps)``.
            The authors' Dice has no eps in the numerator; per sample the two differ by
            ``eps / (sum(p) + sum(g) + eps) <= eps / (sum(p) + sum(g))``.
        loss_size: where the losses are computed: ``'input'`` upsamples the mask
            logits (bilinear) to the targets' size, the input resolution; ``'mask'``
            keeps the decoder's own 4h x 4w logits (256² for a 1024² input) and
            samples the targets down to them (nearest, pixel centres), as MedSAM
            trains: 16x fewer loss pixels, a cheaper step where the encoder is
            cached, and a (slightly) different objective.
        autocast_dtype: ``None`` (float32, unless an outer autocast such as mmengine's
            ``AmpOptimWrapper`` applies), ``'auto'`` (bfloat16 where the device
            computes it natively) or ``'bfloat16'``: the mask decoder runs under
            ``torch.autocast``; its parameters, outputs and losses stay float32, so
            no gradient scaler is needed. The prompt encoder (sin/cos of point
            coordinates) is left out of this autocast.
            For float16 use mmengine's ``AmpOptimWrapper``, which scales the loss.
        checkpoint: an official SAM file or URL, loaded in :meth:`init_weights`.
    """

    def __init__(self, image_size: int = 1024, patch_size: int = 16, embed_dims: int = 256,
                 decoder: Optional[dict] = None, multimask_output: bool = False,
                 text_injection: Optional[str] = None, text_dims: int = 512,
                 prompt_cfg: Optional[dict] = None,
                 frozen_prompt_encoder: bool = True, frozen_decoder: bool = False,
                 mask_loss: str = 'focal', loss_weights: Optional[Dict[str, float]] = None,
                 dice_eps: float = 1.0, loss_size: str = 'input', autocast_dtype: Optional[str] = None,
                 checkpoint: Optional[str] = None, init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if text_injection not in TEXT_INJECTIONS:
            raise ValueError(f'text_injection must be one of {TEXT_INJECTIONS}, got {text_injection!r}')
        if mask_loss not in ('focal', 'bce'):
            raise ValueError(f"mask_loss must be 'focal' or 'bce', got {mask_loss!r}")
        unknown = sorted(set(loss_weights or {}) - set(LOSS_TERMS))
        if unknown:
            raise ValueError(f'loss_weights: unknown terms {unknown}; valid terms are {LOSS_TERMS}')
        if loss_size not in LOSS_SIZES:
            raise ValueError(f'loss_size must be one of {LOSS_SIZES}, got {loss_size!r}')
        if autocast_dtype == 'float16':
            raise ValueError("decode_head.autocast_dtype='float16' would train the decoder in "
                             'float16 without a gradient scaler; use None, \'auto\' or '
                             "'bfloat16', or mmengine's AmpOptimWrapper(dtype='float16')")
        if autocast_dtype not in HEAD_AUTOCAST_DTYPES:
            raise ValueError(f'decode_head.autocast_dtype must be one of {HEAD_AUTOCAST_DTYPES}, '
                             f'got {autocast_dtype!r}')
        self.image_size = image_size
        self.multimask_output = multimask_output
        self.text_injection = text_injection
        self.mask_loss = mask_loss
        self.loss_size = loss_size
        self.autocast_dtype = autocast_dtype
        self.loss_weights = {**dict(mask=20.0, dice=1.0, iou=1.0, soft_iou=0.0),
                             **(loss_weights or {})}
        self.checkpoint = checkpoint
        self.prompt_encoder = SAMPromptEncoder(embed_dims, image_size, patch_size)
        self.mask_decoder = SAMMaskDecoder(transformer_dim=embed_dims, **(decoder or {}))
        for module, frozen in ((self.prompt_encoder, frozen_prompt_encoder),
                               (self.mask_decoder, frozen_decoder)):
            for p in module.parameters():
                p.requires_grad = not frozen
        self.text_proj = self.text_prompt_token = self.text_cross_attn = None
        if text_injection in ('prompt', 'decoder'):
            self.text_proj = nn.Linear(text_dims, embed_dims)
        elif text_injection == 'prompt_encoder':
            self.text_prompt_token = TextPromptToken(text_dims, embed_dims)
        elif text_injection == 'decoder_cross_attn':
            self.text_cross_attn = TextCrossAttention(
                text_dims, embed_dims, num_heads=(decoder or {}).get('num_heads', 8))
        self.prompt_tokens = None
        if prompt_cfg is not None:
            from ..adapters import DecoderPromptTokens  # noqa: F401  (registers the type)
            self.prompt_tokens = MODELS.build(dict(dict(embed_dims=embed_dims), **prompt_cfg))
        self.loss_dice = MODELS.build(dict(type='DiceLoss', use_sigmoid=True, activate=False,
                                           naive_dice=True, eps=dice_eps, reduction='none'))
        self.loss_soft_iou = SoftIoULoss(eps=1e-6, reduction='none')

    @property
    def uses_text(self) -> bool:
        return self.text_injection is not None

    @property
    def has_prompt_tokens(self) -> bool:
        """Whether learnable decoder prompt tokens (``prompt_cfg``) join the sparse prompts."""
        return self.prompt_tokens is not None

    def init_weights(self) -> None:
        """Load SAM's prompt encoder and mask decoder from ``checkpoint`` / a Pretrained init_cfg."""
        checkpoint = sam_checkpoint_of(self)
        if checkpoint is None:
            super().init_weights()
            return
        from ..utils.sam_checkpoint import load_sam_state_dict
        state = load_sam_state_dict(checkpoint)
        load_sam_part(self.prompt_encoder, checkpoint, 'prompt_encoder.', state_dict=state)
        load_sam_part(self.mask_decoder, checkpoint, 'mask_decoder.', state_dict=state)
        self._is_init = True

    def check_points(self, points: torch.Tensor, labels: torch.Tensor) -> None:
        """Raise for points that are not (B, N, 2) inside the input image, or bad labels."""
        if points.dim() != 3 or points.shape[-1] != 2 or labels.shape != points.shape[:2]:
            raise ValueError(f'points must be (B, N, 2) with labels (B, N); got {tuple(points.shape)} '
                             f'and {tuple(labels.shape)}')
        valid = labels >= 0
        outside = valid & ((points < 0) | (points >= self.image_size)).any(-1)
        if outside.any():
            b, n = outside.nonzero()[0].tolist()
            raise ValueError(f'point {points[b, n].tolist()} (prompt {b}, point {n}) lies outside the '
                             f'{self.image_size}x{self.image_size} input image')
        if not torch.isin(labels, labels.new_tensor([-1, 0, 1])).all():
            raise ValueError(f'point labels must be 1 (positive), 0 (negative) or -1 (padding); '
                             f'got {labels.unique().tolist()}')

    def forward(self, image_embeddings: torch.Tensor, points: Optional[torch.Tensor] = None,
                point_labels: Optional[torch.Tensor] = None, boxes: Optional[torch.Tensor] = None,
                text_embeds: Optional[torch.Tensor] = None,
                masks: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Predict masks for B prompt sets.

        Args:
            image_embeddings: (1 or B, C, h, w) from the neck.
            points: (B, N, 2) xy in input pixels; point_labels: (B, N).
            boxes: (B, 4) xyxy in input pixels.
            text_embeds: (B, D), used when ``text_injection`` is set (optional with
                ``'prompt_encoder'``, which then appends its no-text token).
            masks: (B, 1, 4h, 4w) dense mask prompts (SAM's ``mask_inputs``, e.g. CLIP-Guided
                SAM's thresholded similarity map x 255), through SAM's mask downscaling
                instead of the no-mask embedding.

        Returns:
            mask logits (B, M, 4h, 4w) and predicted IoUs (B, M), M = 3 or 1, float32.
        """
        batch = next(t.shape[0] for t in (points, boxes, text_embeds, masks, image_embeddings)
                     if t is not None)
        if self.text_injection not in (None, 'prompt_encoder') and text_embeds is None:
            raise ValueError(f"text_injection={self.text_injection!r} needs text_embeds (B, D)")
        sparse, dense = self.embed_prompts(batch, points, point_labels, boxes, text_embeds, masks)
        extra = mixer = None
        if self.text_injection == 'decoder':
            extra = self.text_proj(text_embeds.to(self.text_proj.weight.dtype))
        elif self.text_injection == 'decoder_cross_attn':
            mixer = functools.partial(self.text_cross_attn, text=text_embeds)
        dense_pe = self.prompt_encoder.get_dense_pe()
        # Only the decoder is autocast: point encodings (sin/cos of coordinates) stay float32.
        # None adds no autocast of its own: an outer one (AmpOptimWrapper) still applies.
        with autocast_context(self.autocast_dtype, image_embeddings.device.type, keep_outer=True):
            masks, iou = self.mask_decoder(image_embeddings, dense_pe, sparse, dense,
                                           self.multimask_output, extra_output_token=extra,
                                           token_mixer=mixer)
        return masks.float(), iou.float()

    def embed_prompts(self, batch: int, points: Optional[torch.Tensor] = None,
                      point_labels: Optional[torch.Tensor] = None,
                      boxes: Optional[torch.Tensor] = None,
                      text_embeds: Optional[torch.Tensor] = None,
                      masks: Optional[torch.Tensor] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The decoder's sparse (B, N', C) and dense (B, C, h, w) prompt embeddings.

        The sparse tokens are, in order: SAM's point / box tokens (with its
        not-a-point padding when there is no box), the text token
        (``text_injection='prompt'`` or ``'prompt_encoder'``), then the learnable
        prompt tokens. Arguments as in :meth:`forward`; ``batch`` is B.
        """
        point_prompt = None
        if points is not None:
            if point_labels is None:
                point_labels = points.new_ones(points.shape[:2], dtype=torch.long)
            self.check_points(points, point_labels)
            point_prompt = (points, point_labels)
        if masks is not None:
            grid = tuple(4 * s for s in self.prompt_encoder.image_embedding_size)
            if masks.dim() != 4 or masks.shape[1] != 1 or tuple(masks.shape[-2:]) != grid:
                raise ValueError(f'mask prompts must be (B, 1, {grid[0]}, {grid[1]}), got '
                                 f'{tuple(masks.shape)}')
        sparse, dense = self.prompt_encoder.embed(point_prompt, boxes, masks, batch_size=batch)
        token = None
        if self.text_injection == 'prompt':
            if text_embeds is None:
                raise ValueError("text_injection='prompt' needs text_embeds (B, D)")
            token = self.text_proj(text_embeds.to(self.text_proj.weight.dtype))[:, None, :]
        elif self.text_injection == 'prompt_encoder':
            token = self.text_prompt_token(text_embeds, batch_size=batch)
        if token is not None:
            sparse = torch.cat([sparse, token.to(sparse.dtype)], dim=1)
        if self.prompt_tokens is not None:
            sparse = torch.cat([sparse, self.prompt_tokens(batch).to(sparse.dtype)], dim=1)
        return sparse, dense

    def loss(self, mask_logits: torch.Tensor, iou_pred: torch.Tensor, targets: torch.Tensor,
             ignore_index: int = 255) -> Dict[str, torch.Tensor]:
        """SAM's training losses on binary targets.

        Args:
            mask_logits: (B, M, h, w); with ``loss_size='input'`` resized to the
                targets' size, with ``'mask'`` the targets are sampled down to h x w.
            iou_pred: (B, M).
            targets: (B, H, W) with 1 = in the mask, 0 = out, ``ignore_index`` = not counted.

        Per sample, BCE / focal is the mean over its counted pixels, and Dice and
        soft IoU sum over them; each term is then averaged over the samples. With no
        ``ignore_index`` pixel in ``targets`` every pixel counts: BCE is the mean over
        all B x h x w pixels, as the SAM-PTx authors compute it (§6.5).

        Returns:
            ``loss_mask`` (focal or BCE), ``loss_dice``, ``loss_iou`` (MSE of the
            predicted IoU; exactly 0, not computed, with an ``iou`` weight of 0) and
            ``loss_soft_iou`` (only with a nonzero ``soft_iou`` weight), each weighted; with M = 3 only
            the mask of least weighted mask + dice (+ soft IoU) loss counts per
            sample, as SAM trains.
        """
        b, m = mask_logits.shape[:2]
        logits = mask_logits.float()
        if self.loss_size == 'mask':
            targets = resize_targets(targets, logits.shape[-2:])
        else:
            logits = F.interpolate(logits, size=targets.shape[-2:], mode='bilinear',
                                   align_corners=False)
        valid = (targets != ignore_index).float()[:, None].expand_as(logits)
        target = (targets == 1).float()[:, None].expand_as(logits)
        n_valid = valid.flatten(2).sum(-1).clamp(min=1.0)
        if self.mask_loss == 'focal':
            pix = sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction='none')
        else:
            pix = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        mask_l = (pix * valid).flatten(2).sum(-1) / n_valid                      # (B, M)
        prob = logits.sigmoid() * valid
        dice_l = self.loss_dice(prob.flatten(0, 1)[:, None],
                                (target * valid).flatten(0, 1)[:, None]).view(b, m)
        w = self.loss_weights
        total = w['mask'] * mask_l + w['dice'] * dice_l
        soft_iou_l = None
        if w['soft_iou'] != 0:
            soft_iou_l = self.loss_soft_iou(prob.flatten(0, 1), target.flatten(0, 1),
                                            valid.flatten(0, 1)).view(b, m)
            total = total + w['soft_iou'] * soft_iou_l
        best = total.argmin(dim=1) if m > 1 else torch.zeros(b, dtype=torch.long, device=total.device)
        rows = torch.arange(b, device=total.device)
        losses = dict(loss_mask=w['mask'] * mask_l[rows, best].mean(),
                      loss_dice=w['dice'] * dice_l[rows, best].mean())
        if soft_iou_l is not None:
            losses['loss_soft_iou'] = w['soft_iou'] * soft_iou_l[rows, best].mean()
        if w['iou'] == 0:
            losses['loss_iou'] = 0 * iou_pred.float().sum()
            return losses
        with torch.no_grad():
            hard = (logits[rows, best] > 0).float() * valid[rows, best]
            tgt = target[rows, best] * valid[rows, best]
            inter = (hard * tgt).flatten(1).sum(-1)
            union = (hard + tgt).clamp(max=1).flatten(1).sum(-1)
            true_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        losses['loss_iou'] = w['iou'] * F.mse_loss(iou_pred[rows, best].float(), true_iou)
        return losses

    def select_mask(self, mask_logits: torch.Tensor, iou_pred: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The mask SAM would return: (B, M, h, w), (B, M) -> (B, h, w), (B,), best predicted IoU."""
        best = iou_pred.argmax(dim=1)
        rows = torch.arange(mask_logits.shape[0], device=mask_logits.device)
        return mask_logits[rows, best], iou_pred[rows, best]


def resize_targets(targets: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Label maps (B, H, W) -> (B, *size), each output pixel the label at its centre
    (nearest-exact); labels, the ignore value included, are kept as they are."""
    if tuple(targets.shape[-2:]) == tuple(size):
        return targets
    return F.interpolate(targets[:, None].float(), size=size, mode='nearest-exact')[:, 0].to(
        targets.dtype)
