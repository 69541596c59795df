"""Visual prompt tokens for SAM's image encoder (VPT shallow or deep), the encoder half of PTSAM."""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from mmseg.registry import MODELS

DEPTHS = ('shallow', 'deep')


@MODELS.register_module()
class EncoderPromptTokens(nn.Module):
    """Learnable tokens that join the token sequence of chosen encoder blocks.

    PTSAM (arXiv 2504.16739) prompts SAM's ViT like VPT (Jia et al. 2022):

    * ``depth='shallow'``: P tokens enter one block (``blocks=None``: the first)
      and travel through every later block, updated by each like the image
      tokens.
    * ``depth='deep'``: every chosen block (``blocks=None``: all) has its own P
      tokens; they replace whatever prompt tokens the previous block put out.
      Blocks after a prompted one but not chosen carry the tokens on.

    The tokens are dropped after the last block (the neck never sees them).
    How they enter SAM's windowed attention is
    :meth:`mmsamptx.models.utils.SAMBlock.forward_with_prompts`: appended to
    every window (the same tokens), appended once in global blocks, no
    relative-position bias. Parameters: ``len(blocks) * P * C``.

    Args:
        num_tokens: P >= 1 tokens per prompted block.
        depth: ``'shallow'`` or ``'deep'``.
        blocks: prompted block indices (negative count from the end); ``None``
            for the default of ``depth``. Shallow takes exactly one.
        embed_dims: C, filled in from the encoder.
        num_blocks: the encoder's depth, filled in from the encoder.
        init_std: standard deviation of the normal initialisation.
    """

    def __init__(self, num_tokens: int, depth: str = 'deep', blocks: Optional[Sequence[int]] = None,
                 embed_dims: int = 768, num_blocks: int = 12, init_std: float = 0.02) -> None:
        super().__init__()
        if not isinstance(num_tokens, int) or num_tokens <= 0:
            raise ValueError(f'EncoderPromptTokens: num_tokens must be a positive int, got {num_tokens!r} '
                             '(for no encoder prompts leave backbone.prompt_cfg=None)')
        if depth not in DEPTHS:
            raise ValueError(f'EncoderPromptTokens: depth must be one of {DEPTHS}, got {depth!r}')
        if blocks is None:
            indices = [0] if depth == 'shallow' else list(range(num_blocks))
        else:
            bad = [i for i in blocks if not -num_blocks <= int(i) < num_blocks]
            if bad:
                raise ValueError(f'EncoderPromptTokens: blocks {bad} out of range for an encoder of '
                                 f'{num_blocks} blocks (valid: 0..{num_blocks - 1} or negative)')
            indices = sorted({int(i) % num_blocks for i in blocks})
        if depth == 'shallow' and len(indices) != 1:
            raise ValueError(f"EncoderPromptTokens: depth='shallow' prompts one block, got blocks={blocks}; "
                             "use depth='deep' for several")
        self.num_tokens = num_tokens
        self.depth = depth
        self.block_indices = indices
        self._slot = {b: i for i, b in enumerate(indices)}
        self.tokens = nn.Parameter(torch.randn(len(indices), num_tokens, embed_dims) * init_std)

    @property
    def first_block(self) -> int:
        """The first block whose sequence holds prompt tokens."""
        return self.block_indices[0]

    def forward(self, block: int, carried: Optional[torch.Tensor], batch_size: int
                ) -> Optional[torch.Tensor]:
        """The prompt tokens entering ``block``.

        Args:
            block: block index.
            carried: (B, P, C) prompt tokens put out by the previous block, or None.
            batch_size: B.

        Returns:
            (B, P, C): this block's own tokens if it is prompted, else ``carried``
            (None before the first prompted block).
        """
        slot = self._slot.get(block)
        if slot is None:
            return carried
        return self.tokens[slot].unsqueeze(0).expand(batch_size, -1, -1)

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}, depth={self.depth!r}, blocks={self.block_indices}'
