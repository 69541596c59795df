"""Learnable sparse prompt tokens for SAM's mask decoder: the 2,048 parameters of PTSAM."""
import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class DecoderPromptTokens(nn.Module):
    """P learnable tokens appended to the sparse prompt embeddings of SAM's mask decoder.

    PTSAM (arXiv 2504.16739): with SAM frozen, these tokens alone learn what
    the task's target is; at inference without any user prompt they drive the
    decoder (with SAM's no-mask dense embedding), so the model segments the
    target automatically. With user prompts they join the point / box tokens.
    Parameters: ``P * C`` (8 x 256 = 2,048 by default).

    Args:
        num_tokens: P >= 1.
        embed_dims: C, the decoder width (256 in every SAM); filled in by the head.
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(self, num_tokens: int = 8, embed_dims: int = 256, init_std: float = 1.0) -> None:
        super().__init__()
        if not isinstance(num_tokens, int) or num_tokens <= 0:
            raise ValueError(f'DecoderPromptTokens: num_tokens must be a positive int, got {num_tokens!r} '
                             '(for no decoder prompts leave decode_head.prompt_cfg=None)')
        if embed_dims <= 0:
            raise ValueError(f'DecoderPromptTokens: embed_dims must be positive, got {embed_dims}')
        self.num_tokens = num_tokens
        self.tokens = nn.Parameter(torch.randn(num_tokens, embed_dims) * init_std)

    def forward(self, batch_size: int) -> torch.Tensor:
        """The tokens for a batch: (B, P, C)."""
        return self.tokens.unsqueeze(0).expand(batch_size, -1, -1)

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, embed_dims={self.tokens.shape[1]}'
