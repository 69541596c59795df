"""SAM's prompt encoder (points, boxes, masks) as a registered building block."""
import torch.nn as nn
from mmseg.registry import MODELS
from segment_anything.modeling import PromptEncoder


@MODELS.register_module()
class SAMPromptEncoder(PromptEncoder):
    """``segment_anything``'s prompt encoder, sized from the image and patch size.

    The module is SAM's own class, so its maths and parameter names (below
    ``prompt_encoder.`` in the official files) are SAM's by construction.

    Args:
        embed_dim: prompt embedding width (256 in every official model).
        image_size: side of the (padded) input image, in pixels.
        patch_size: the image encoder's patch size; the embedding grid is
            ``image_size // patch_size``.
        mask_in_chans: hidden channels of the mask-prompt downscaler.
    """

    def __init__(self, embed_dim: int = 256, image_size: int = 1024, patch_size: int = 16,
                 mask_in_chans: int = 16) -> None:
        grid = image_size // patch_size
        super().__init__(embed_dim=embed_dim, image_embedding_size=(grid, grid),
                         input_image_size=(image_size, image_size),
                         mask_in_chans=mask_in_chans, activation=nn.GELU)

    def embed(self, points=None, boxes=None, masks=None, batch_size: int = 1):
        """Like ``forward``, but with no prompt at all it still returns ``batch_size`` rows.

        Args:
            points: ``(coords (B, N, 2) in input pixels (x, y), labels (B, N))`` or None;
                labels 1 = positive, 0 = negative, -1 = padding.
            boxes: (B, 4) xyxy or None.  masks: (B, 1, 4h, 4w) or None.

        Returns:
            sparse (B, N', C) and dense (B, C, h, w) embeddings.
        """
        if points is not None or boxes is not None or masks is not None:
            return self(points, boxes, masks)
        sparse = self.no_mask_embed.weight.new_zeros((batch_size, 0, self.embed_dim))
        dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
            batch_size, -1, *self.image_embedding_size)
        return sparse, dense
