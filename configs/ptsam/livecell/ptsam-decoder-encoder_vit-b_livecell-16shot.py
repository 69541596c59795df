# LIVECell, 16 shots, SAM ViT-B: PTSAM, decoder + encoder prompts (75,776 trainable).
# Method: ../_base_/ptsam_decoder_encoder.py; data: ../../_base_/datasets/ptsam_livecell.py.
_base_ = ['../_base_/ptsam_decoder_encoder.py', '../../_base_/datasets/ptsam_livecell.py']
model = dict(class_names='LIVECellDataset')  # ('background', 'cell')
