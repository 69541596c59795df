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
