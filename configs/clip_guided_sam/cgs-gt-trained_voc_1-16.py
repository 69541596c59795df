# Train-test prompt consistency (the paper's Sec. 4.1): trained with GT points, tested with CLIP's
# points. Paper: 69.8 on VOC 1/16 (against 78.3 trained with CLIP's points).
_base_ = ['./cgs_voc_1-16.py']
model = dict(train_cfg=dict(point_source='gt', point_grid='mask'))
