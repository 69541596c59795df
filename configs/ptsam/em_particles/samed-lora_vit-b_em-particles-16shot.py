# EMParticles, 16 shots, SAM ViT-B: SAMed, LoRA r=4 on q, v + decoder (4,205,796).
# Method: ../_base_/samed_lora.py; data: ../../_base_/datasets/ptsam_em_particles.py.
_base_ = ['../_base_/samed_lora.py', '../../_base_/datasets/ptsam_em_particles.py']
model = dict(class_names='EMParticlesDataset')  # ('background', 'particle')
