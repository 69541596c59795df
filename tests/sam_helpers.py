"""Builders of reference SAM models in the official key format, shared by the tests."""
import functools

import torch
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                       TwoWayTransformer)

TINY = dict(embed_dim=64, depth=4, num_heads=2, global_attn_indexes=(1, 3), window_size=4)


def build_reference_sam(img_size=64, **arch):
    """A segment_anything ``Sam`` with the numbers of our ``tiny`` arch (or ``arch``)."""
    a = dict(TINY, **arch)
    grid = img_size // 16
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size, patch_size=16, embed_dim=a['embed_dim'], depth=a['depth'],
            num_heads=a['num_heads'], mlp_ratio=4, out_chans=256, qkv_bias=True,
            norm_layer=functools.partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
            global_attn_indexes=a['global_attn_indexes'], window_size=a['window_size']),
        prompt_encoder=PromptEncoder(embed_dim=256, image_embedding_size=(grid, grid),
                                     input_image_size=(img_size, img_size), mask_in_chans=16),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
            transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256))


def randomise_zero_inits(model, seed=0, std=0.02):
    """SAM initialises position tables to zero; fill them so equivalence tests mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'pos_embed' in name or 'rel_pos' in name or p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def load_encoder_and_neck(checkpoint, arch='tiny', img_size=64, **encoder_kwargs):
    """Our SAMImageEncoder + SAMNeck with ``checkpoint`` loaded through ``init_weights``."""
    from mmsamptx.models.backbones import SAMImageEncoder
    from mmsamptx.models.necks import SAMNeck
    enc = SAMImageEncoder(arch, img_size=img_size, checkpoint=checkpoint, **encoder_kwargs)
    neck = SAMNeck(enc.embed_dims, checkpoint=checkpoint)
    enc.init_weights()
    neck.init_weights()
    return enc, neck
