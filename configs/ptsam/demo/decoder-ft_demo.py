# Baseline (tiny): SAM's mask decoder fine-tuned with one point prompt per class, prompted test.
_base_ = ['./_base_microscopy.py']
model = dict(embedding_cache=dict(type='memory'))
