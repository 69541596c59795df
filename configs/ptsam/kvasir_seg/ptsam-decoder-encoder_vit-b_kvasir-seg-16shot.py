# Kvasir-SEG, 16 shots, SAM ViT-B: PTSAM, decoder + encoder prompts (75,776 trainable).
# Method: ../_base_/ptsam_decoder_encoder.py; data: ../../_base_/datasets/ptsam_kvasir_seg.py.
_base_ = ['../_base_/ptsam_decoder_encoder.py', '../../_base_/datasets/ptsam_kvasir_seg.py']
model = dict(class_names='KvasirSEGDataset')  # ('background', 'polyp')
