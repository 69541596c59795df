# CLIP-Guided SAM on camouflaged objects, manual mode (5 GT points at training and test). Paper
# (Table 2, COD10K): S 0.914, E 0.965, weighted F 0.874, MAE 0.015.
_base_ = ['./cgs_cod.py']
model = dict(train_cfg=dict(point_source='gt', point_grid='mask'),
             test_cfg=dict(point_source='gt', point_grid='mask'))
