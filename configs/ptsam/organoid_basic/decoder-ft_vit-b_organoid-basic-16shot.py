# OrganoidBasic, 16 shots, SAM ViT-B: decoder fine-tuned prompt-free, SAMed's recipe (4,058,340).
# Method: ../_base_/decoder_ft_samed.py; data: ../../_base_/datasets/ptsam_organoid_basic.py.
_base_ = ['../_base_/decoder_ft_samed.py', '../../_base_/datasets/ptsam_organoid_basic.py']
model = dict(class_names='OrganoidBasicDataset')  # ('background', 'organoid')
