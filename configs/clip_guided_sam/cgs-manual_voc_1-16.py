# CLIP-Guided SAM in manual mode: 5 points from the ground truth at training and test (the dense
# similarity prompt stays), PASCAL VOC 1/16.
_base_ = ['./cgs_voc_1-16.py']
model = dict(train_cfg=dict(point_source='gt', point_grid='mask'),
             test_cfg=dict(point_source='gt', point_grid='mask'))
