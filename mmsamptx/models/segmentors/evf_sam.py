"""EVF-SAM: referring segmentation with SAM prompted by BEiT-3's early fusion of image and expression."""
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from torch import Tensor

from ..utils.param_report import format_parameter_report

#: The BEiT-3 view's normalisation, (x - 0.5) / 0.5 of [0, 1] pixels (EVF-SAM's beit3_preprocess).
BEIT3_MEAN = 0.5
BEIT3_STD = 0.5


def _input_error(message: str) -> ValueError:
    """A user error the tools print as one line (:class:`mmsamptx.apis.errors.InputError`)."""
    from ...apis.errors import InputError  # here: the apis package imports the models
    return InputError(message)


def beit3_view(image: Tensor, size: int) -> Tensor:
    """RGB uint8 (3, H, W) -> (3, size, size): [0, 1], bicubic resize of the tensor without
    antialiasing (torchvision's tensor ``Resize(antialias=None)``, cubic coefficient -0.75), then
    (x - 0.5) / 0.5; no clamping. The original image, not SAM's resized one, is the source."""
    x = image.float()[None] / 255.0
    x = F.interpolate(x, size=(size, size), mode='bicubic', align_corners=False, antialias=False)
    return ((x - BEIT3_MEAN) / BEIT3_STD)[0]


def dice_loss_evf(logits: Tensor, target: Tensor, valid: Tensor, scale: float = 1000.0,
                  eps: float = 1e-6) -> Tensor:
    """EVF-SAM's Dice per mask: (E, H, W) -> (E,).

    ``1 - (2 sum(p t) / scale + eps) / (sum(p) / scale + sum(t) / scale + eps)`` with
    p = sigmoid(logits), over the ``valid`` pixels (a Dice with eps = scale * 1e-6 in pixels).
    """
    p = logits.sigmoid() * valid
    t = target * valid
    num = 2 * (p / scale * t).flatten(1).sum(-1)
    den = (p / scale).flatten(1).sum(-1) + (t / scale).flatten(1).sum(-1)
    return 1 - (num + eps) / (den + eps)


@MODELS.register_module()
class EVFSAM(BaseSegmentor):
    """EVF-SAM (arXiv 2406.20076): an image and a referring expression -> the referred object's mask.

    Per image: the frozen SAM image encoder runs once on SAM's view (long side S,
    padded); each expression of the image is tokenised and fused with the image's
    BEiT-3 view (224², bicubic) in BEiT-3; the output at position 0 (the vision
    CLS) goes through :class:`EVFPromptProjector` to one 256-d token, SAM's only
    sparse prompt (dense: ``no_mask_embed``); SAM's mask decoder predicts the mask,
    chosen among its 4 tokens by the visual model's multimask rule and resized to
    the original image size. All expressions of a batch go through BEiT-3 and the
    decoder as one batch, sharing their image's SAM embedding.

    Training (the recipe the authors did not release; method notes §10, §11):
    each data sample is one image with its expressions (up to 3, drawn by
    :class:`~mmsamptx.datasets.transforms.LoadReferringMasks`) and their masks
    (``gt_sem_seg`` (E, H, W)); the loss is at the original size,
    ``w_bce * mean_j BCE_j + w_dice * mean_j Dice_j`` over the batch's masks, with
    EVF-SAM's Dice (:func:`dice_loss_evf`). What trains is each component's own
    setting: BEiT-3 (all of it, or LoRA via ``fusion_encoder.lora_cfg``), the
    projector, and SAM's mask decoder and ``no_mask_embed``
    (``visual_model.train_decoder`` / ``train_no_mask_embed``).

    Data samples carry their expressions in the metainfo as ``expressions`` (a
    list, with ``gt_sem_seg`` (E, H, W)) or ``expression`` (one string, as
    :class:`~mmsamptx.datasets.RefCOCODataset` gives one sample per sentence).
    Inputs are uint8 images (3, H, W) at their original size (a list, or a batch
    of equal sizes), BGR as mmcv loads them (``input_bgr=True``).

    Args:
        visual_model: the SAM side, e.g. ``dict(type='EVFVisualSAM', arch='vit_h')``;
            any module with the methods listed in :mod:`.heads.evf_visual_sam`.
        fusion_encoder: ``dict(type='BEiT3', arch='large', ...)``.
        projector: ``dict(type='EVFPromptProjector')``; ``in_dims`` and ``out_dims``
            are filled in from the two encoders.
        tokenizer: :class:`BEiT3Tokenizer` arguments (``model_file``: the sentencepiece
            file or its URL; ``added_tokens``); the file is read on first use, never
            while building.
        checkpoint: a released EVF-SAM file (``pytorch_model.bin`` or
            ``model.safetensors``), a local path or a URL (downloaded once into the torch
            hub cache), loaded exactly in :meth:`init_weights` instead of the components'
            own init files; see :mod:`mmsamptx.models.utils.evf_checkpoint`.
        train_cfg: not used (the data pipeline draws the expressions of a step).
        test_cfg: ``lowercase`` (the authors' evaluation lower-cases and strips each
            sentence; True), ``chunk`` (expressions per BEiT-3 / decoder pass; 32).
        loss_weights: ``bce`` and ``dice`` (default LISA's 2.0 and 0.5, which EVF-SAM's
            code builds on; the paper's are not published).
        input_bgr: inputs are BGR (mmcv's default) and are flipped to RGB.
    """

    def __init__(self, visual_model: dict, fusion_encoder: dict, projector: dict,
                 tokenizer: dict, checkpoint: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None, train_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None, loss_weights: Optional[dict] = None,
                 input_bgr: bool = True, ignore_index: int = 255,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        from ..heads import EVFPromptProjector, EVFVisualSAM  # noqa: F401  (registers the types)
        from ..text_encoders.beit3 import BEiT3  # noqa: F401
        self.visual_model = MODELS.build(visual_model)
        self.fusion_encoder = MODELS.build(fusion_encoder)
        projector = dict(projector)
        projector.setdefault('in_dims', self.fusion_encoder.embed_dims)
        projector.setdefault('out_dims', self.visual_model.embed_dims)
        self.projector = MODELS.build(projector)
        self.tokenizer_cfg = dict(tokenizer)
        self._tokenizer = None
        self.checkpoint = checkpoint
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = {**dict(lowercase=True, chunk=32), **(test_cfg or {})}
        self.loss_weights = {**dict(bce=2.0, dice=0.5), **(loss_weights or {})}
        unknown = sorted(set(self.loss_weights) - {'bce', 'dice'})
        if unknown:
            raise ValueError(f"loss_weights: unknown term {unknown[0]!r}; valid: 'bce', 'dice'")
        self.input_bgr = input_bgr
        self.ignore_index = ignore_index
        self.align_corners = False

    # ------------------------------------------------------------------ weights and text
    @property
    def tokenizer(self):
        """The :class:`BEiT3Tokenizer`, built (its file read) on first use."""
        if self._tokenizer is None:
            from ..text_encoders.beit3_tokenizer import BEiT3Tokenizer
            self._tokenizer = BEiT3Tokenizer(**self.tokenizer_cfg)
        return self._tokenizer

    def init_weights(self) -> None:
        """Load a released EVF-SAM file (``checkpoint``) exactly, or each component's own init."""
        if self.checkpoint is None:
            super().init_weights()
        else:
            from ..utils.evf_checkpoint import load_evf_checkpoint
            load_evf_checkpoint(self, self.checkpoint)
            self._is_init = True
        print_log('EVF-SAM trainable parameters:\n' + format_parameter_report(self),
                  logger='current', level=logging.INFO)

    def tokenize(self, texts: Sequence[str]) -> Tuple[Tensor, Tensor]:
        """Expressions -> ids (E, L) and padding mask (E, L) on the model's device.

        Raises ValueError naming an empty expression (and its index) or one longer than
        BEiT-3's text position table (``fusion_encoder.max_text_len`` tokens).
        """
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise _input_error(f'expression {i} is empty ({t!r}); give each object a description')
        try:
            ids, pad = self.tokenizer(list(texts), max_length=self.fusion_encoder.max_text_len)
        except ValueError as e:
            raise _input_error(str(e)) from e
        device = self.projector.layers[0].weight.device
        return ids.to(device), pad.to(device)

    # ------------------------------------------------------------------ the prompt path
    def _rgb_images(self, inputs) -> List[Tensor]:
        """The batch's uint8 images (3, H, W), in RGB."""
        images = list(inputs) if not isinstance(inputs, Tensor) or inputs.dim() == 4 else [inputs]
        for img in images:
            if img.dim() != 3 or img.shape[0] != 3:
                raise ValueError(f'EVFSAM expects (3, H, W) images, got {tuple(img.shape)}')
        return [img.flip(0) if self.input_bgr else img for img in images]

    def prompt_tokens(self, views: Tensor, image_index: Tensor, texts: Sequence[str]) -> Tensor:
        """BEiT-3 on (image, expression) pairs -> SAM prompt tokens.

        Args:
            views: (B, 3, s, s) BEiT-3 views of the batch's images.
            image_index: (E,) the image of each expression.
            texts: E expressions.

        Returns:
            (E, 1, 256) tokens: the projected fused vision-CLS output.
        """
        ids, pad = self.tokenize(texts)
        fused = self.fusion_encoder(views.index_select(0, image_index), ids, pad)  # (E, S + L, D)
        return self.projector(fused[:, 0])

    def predict_logits(self, images: Sequence[Tensor], expressions: Sequence[Sequence[str]],
                       chunk: Optional[int] = None) -> Tuple[List[Tensor], List[Tensor]]:
        """Mask logits at each image's original size for each of its expressions.

        Args:
            images: B RGB uint8 images (3, H_b, W_b).
            expressions: for each image, its E_b expressions.
            chunk: expressions per BEiT-3 / decoder pass (None: all at once).

        Returns:
            per image, logits (E_b, H_b, W_b) and the chosen masks' predicted IoUs (E_b,).
        """
        if len(images) != len(expressions):
            raise ValueError(f'{len(images)} images but {len(expressions)} expression lists')
        device = self.projector.layers[0].weight.device
        images = [img.to(device) for img in images]
        batch, sizes = self.visual_model.preprocess(images)
        features = self.visual_model.encode(batch)
        s = self.fusion_encoder.vision_embed.img_size
        views = torch.stack([beit3_view(img, s) for img in images])
        texts = [t for exprs in expressions for t in exprs]
        image_index = torch.tensor([b for b, exprs in enumerate(expressions) for _ in exprs],
                                   dtype=torch.long, device=device)
        chunk = chunk or max(len(texts), 1)
        low, scores = [], []
        for start in range(0, len(texts), chunk):
            idx = image_index[start:start + chunk]
            tokens = self.prompt_tokens(views, idx, texts[start:start + chunk])
            logits, iou = self.visual_model.decode(features, idx, tokens)
            logits, score = self.visual_model.select(logits, iou)
            low.append(logits)
            scores.append(score)
        low = torch.cat(low) if low else features.new_zeros((0, 1, 1))
        scores = torch.cat(scores) if scores else features.new_zeros((0,))
        out_logits, out_scores, start = [], [], 0
        for b, exprs in enumerate(expressions):
            n = len(exprs)
            out_logits.append(self.visual_model.postprocess(low[start:start + n], sizes[b],
                                                            tuple(images[b].shape[-2:])))
            out_scores.append(scores[start:start + n])
            start += n
        return out_logits, out_scores

    @torch.no_grad()
    def predict_expressions(self, image: np.ndarray, expressions: Sequence[str]) -> Dict[str, np.ndarray]:
        """Masks of several expressions in one RGB image, in one call.

        Args:
            image: RGB uint8 (H, W, 3).
            expressions: E referring expressions (``'[semantic] ...'`` asks a multitask
                checkpoint for every instance of a category).

        Returns:
            ``dict(masks=(E, H, W) bool, scores=(E,) float32)``, scores being the
            chosen masks' predicted IoUs.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 \
                or image.dtype != np.uint8:
            raise ValueError('predict_expressions expects an RGB uint8 array (H, W, 3), got '
                             f'{getattr(image, "dtype", type(image).__name__)} '
                             f'{getattr(image, "shape", "")}')
        if isinstance(expressions, str):
            expressions = [expressions]
        texts = [self._test_text(t) for t in expressions]
        was_training = self.training
        self.eval()
        try:
            img = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            logits, scores = self.predict_logits([img], [texts], self.test_cfg['chunk'])
        finally:
            self.train(was_training)
        return dict(masks=(logits[0] > 0).cpu().numpy(),
                    scores=scores[0].float().cpu().numpy().astype(np.float32))

    def _test_text(self, text: str) -> str:
        if not isinstance(text, str) or not text.strip():
            return text  # tokenize() names it
        return text.strip().lower() if self.test_cfg['lowercase'] else text

    # ------------------------------------------------------------------ mmseg interface
    @staticmethod
    def sample_expressions(sample: SegDataSample) -> List[str]:
        """A data sample's expressions (``expressions`` list or one ``expression``)."""
        meta = sample.metainfo
        if 'expressions' in meta:
            return list(meta['expressions'])
        if 'expression' in meta:
            return [meta['expression']]
        raise KeyError(f'data sample {meta.get("img_path", "?")} has no expression: add '
                       "'expressions' (or 'expression') to the pipeline's meta_keys")

    def loss(self, inputs, data_samples: List[SegDataSample]) -> Dict[str, Tensor]:
        """BCE + Dice of each expression's mask at its image's original size.

        Targets are the mask values as they are (2 where summed polygons overlap, with
        ``RefCOCODataset(polygons='sum')``, as in the authors' code); ``ignore_index``
        pixels are left out of both terms.
        """
        images = self._rgb_images(inputs)
        expressions = [self.sample_expressions(s) for s in data_samples]
        logits, _ = self.predict_logits(images, expressions)
        bce, dice = [], []
        for b, (z, sample) in enumerate(zip(logits, data_samples)):
            gt = sample.gt_sem_seg.data.to(z.device)
            if gt.dim() == 2:
                gt = gt[None]
            if gt.shape != z.shape:
                raise ValueError(f'{sample.metainfo.get("img_path", "?")}: {z.shape[0]} expressions of '
                                 f'size {tuple(z.shape[1:])} but ground truth {tuple(gt.shape)}')
            valid = (gt != self.ignore_index).float()
            target = torch.where(gt == self.ignore_index, torch.zeros_like(gt), gt).float()
            pix = F.binary_cross_entropy_with_logits(z, target, reduction='none') * valid
            bce.append(pix.flatten(1).sum(-1) / valid.flatten(1).sum(-1).clamp(min=1))
            dice.append(dice_loss_evf(z, target, valid))
        bce, dice = torch.cat(bce), torch.cat(dice)
        n = bce.numel() + 1e-8
        return dict(loss_bce=self.loss_weights['bce'] * bce.sum() / n,
                    loss_dice=self.loss_weights['dice'] * dice.sum() / n)

    def predict(self, inputs, data_samples: Optional[List[SegDataSample]] = None
                ) -> List[SegDataSample]:
        """Per data sample: ``pred_sem_seg`` (E, H, W) 0/1, ``seg_logits`` (E, H, W) and
        ``pred_scores`` (E,), one row per expression, at the original size."""
        images = self._rgb_images(inputs)
        if data_samples is None:
            raise ValueError('EVFSAM.predict needs data samples carrying the expressions')
        expressions = [[self._test_text(t) for t in self.sample_expressions(s)] for s in data_samples]
        logits, scores = self.predict_logits(images, expressions, self.test_cfg['chunk'])
        for sample, z, score in zip(data_samples, logits, scores):
            sample.seg_logits = PixelData(data=z)
            sample.pred_sem_seg = PixelData(data=(z > 0).long())
            sample.set_field(score, 'pred_scores')
        return data_samples

    def _forward(self, inputs, data_samples: Optional[List[SegDataSample]] = None):
        """Mask logits per sample (tensor mode)."""
        images = self._rgb_images(inputs)
        expressions = [self.sample_expressions(s) for s in data_samples]
        return self.predict_logits(images, expressions)[0]

    def extract_feat(self, inputs) -> Tensor:
        """SAM image embeddings (B, 256, S/16, S/16) of RGB-converted inputs."""
        batch, _ = self.visual_model.preprocess(self._rgb_images(inputs))
        return self.visual_model.encode(batch)

    def encode_decode(self, inputs, batch_img_metas: List[dict]) -> Tensor:
        """Mask logits (B, E, H, W) for images of one size with E expressions each, the
        expressions read from each meta's ``expressions`` (or ``expression``)."""
        expressions = [list(m['expressions']) if 'expressions' in m else [m['expression']]
                       for m in batch_img_metas]
        logits = self.predict_logits(self._rgb_images(inputs), expressions)[0]
        if len({tuple(z.shape) for z in logits}) > 1:
            raise ValueError('encode_decode stacks the logits of images of one size with as many '
                             f'expressions each; got {[tuple(z.shape) for z in logits]}')
        return torch.stack(logits)
