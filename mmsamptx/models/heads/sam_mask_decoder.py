"""SAM's mask decoder, extended to pair each image embedding with its own prompts."""
from typing import Callable, Optional, Tuple

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from segment_anything.modeling import MaskDecoder, TwoWayTransformer

# Transforms the decoder's token sequence (B, T, C) -> (B, T, C) before the two-way transformer.
TokenMixer = Callable[[torch.Tensor], torch.Tensor]


@MODELS.register_module()
class SAMMaskDecoder(MaskDecoder):
    """``segment_anything``'s mask decoder (two-way transformer, hypernetwork masks, IoU head).

    SAM's own decoder repeats one image embedding for a batch of prompts. Here
    ``image_embeddings`` may also hold one embedding *per prompt set* (B == number
    of prompt sets), which is what class-conditioned encoders produce: each
    (image, class) pair has its own embedding. With a single embedding the
    result is exactly SAM's.
    """

    def __init__(self, transformer_dim: int = 256, depth: int = 2, mlp_dim: int = 2048,
                 num_heads: int = 8, num_multimask_outputs: int = 3, iou_head_depth: int = 3,
                 iou_head_hidden_dim: int = 256) -> None:
        super().__init__(
            transformer_dim=transformer_dim,
            transformer=TwoWayTransformer(depth=depth, embedding_dim=transformer_dim,
                                          mlp_dim=mlp_dim, num_heads=num_heads),
            num_multimask_outputs=num_multimask_outputs, activation=nn.GELU,
            iou_head_depth=iou_head_depth, iou_head_hidden_dim=iou_head_hidden_dim)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool,
                extra_output_token: Optional[torch.Tensor] = None,
                token_mixer: Optional[TokenMixer] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Masks (B, 3 or 1, 4h, 4w) and their predicted IoUs (B, 3 or 1); see :meth:`predict_masks`."""
        masks, iou_pred = self.predict_masks(image_embeddings, image_pe, sparse_prompt_embeddings,
                                             dense_prompt_embeddings, extra_output_token,
                                             token_mixer)
        mask_slice = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, mask_slice], iou_pred[:, mask_slice]

    def predict_masks(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                      sparse_prompt_embeddings: torch.Tensor,
                      dense_prompt_embeddings: torch.Tensor,
                      extra_output_token: Optional[torch.Tensor] = None,
                      token_mixer: Optional[TokenMixer] = None
                      ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Predict all mask tokens' masks and IoUs.

        Args:
            image_embeddings: (1 or B, C, h, w).
            image_pe: (1, C, h, w) dense positional encoding.
            sparse_prompt_embeddings: (B, N, C) point / box / text tokens.
            dense_prompt_embeddings: (B, C, h, w).
            extra_output_token: optional (B, C) token placed after the mask tokens;
                its transformer output is added to every mask token's output
                before the hypernetworks (text injected into the decoder).
            token_mixer: optional callable (B, T, C) -> (B, T, C) applied to the whole
                token sequence (output tokens, then sparse prompts) before the two-way
                transformer, e.g. a :class:`TextCrossAttention` bound to the text.

        Returns:
            masks (B, num_mask_tokens, 4h, 4w) and IoU predictions (B, num_mask_tokens).
        """
        b = sparse_prompt_embeddings.shape[0]
        if image_embeddings.shape[0] not in (1, b):
            raise ValueError(f'{image_embeddings.shape[0]} image embeddings for {b} prompt sets; '
                             'expected 1 or one per prompt set')
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        parts = [output_tokens.unsqueeze(0).expand(b, -1, -1)]
        if extra_output_token is not None:
            parts.append(extra_output_token[:, None, :].to(output_tokens.dtype))
        parts.append(sparse_prompt_embeddings.to(output_tokens.dtype))
        tokens = torch.cat(parts, dim=1)
        if token_mixer is not None:
            tokens = token_mixer(tokens)
        src = image_embeddings.expand(b, -1, -1, -1) + dense_prompt_embeddings
        pos_src = image_pe.expand(b, -1, -1, -1)
        _, c, h, w = src.shape

        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1:1 + self.num_mask_tokens, :]
        if extra_output_token is not None:
            mask_tokens_out = mask_tokens_out + hs[:, 1 + self.num_mask_tokens, None, :]

        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper_in = torch.stack([mlp(mask_tokens_out[:, i, :])
                                for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1)
        _, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.reshape(b, c, h * w)).reshape(b, -1, h, w)
        return masks, self.iou_prediction_head(iou_token_out)
