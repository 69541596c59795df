# PTSAM, decoder + image-encoder prompt tuning: ./ptsam_decoder.py plus 8 deep visual prompt tokens in
# each of ViT-B's 12 blocks (12 x 8 x 768 = 73,728), the same tokens in every 14x14 window of a windowed
# block. Trainable: 2,048 + 73,728 = 75,776. No embedding cache: the prompted encoder changes in training.
_base_ = ['./ptsam_decoder.py']
model = dict(
    backbone=dict(prompt_cfg=dict(type='EncoderPromptTokens', num_tokens=8, depth='deep')),  # n_ie = 8
    embedding_cache=None)
# Encoder prompts start at std 0.02 (ViT scale): a smaller step than the decoder tokens'.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.prompt_tokens': dict(lr_mult=0.1)}))
