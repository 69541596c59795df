# Kvasir-SEG, 16 shots, SAM ViT-B: decoder fine-tuned prompt-free, SAMed's recipe (4,058,340).
# Method: ../_base_/decoder_ft_samed.py; data: ../../_base_/datasets/ptsam_kvasir_seg.py.
_base_ = ['../_base_/decoder_ft_samed.py', '../../_base_/datasets/ptsam_kvasir_seg.py']
model = dict(class_names='KvasirSEGDataset')  # ('background', 'polyp')
