# PTSAM, decoder + encoder prompt tuning (tiny): plus 4 deep prompt tokens in each of the 4 encoder
# blocks. Trainable: 8 x 256 + 4 x 4 x 64 = 3,072. No embedding cache (the encoder is prompted).
_base_ = ['./ptsam-decoder_demo.py']
model = dict(
    backbone=dict(prompt_cfg=dict(type='EncoderPromptTokens', num_tokens=4, depth='deep')),
    embedding_cache=None)
