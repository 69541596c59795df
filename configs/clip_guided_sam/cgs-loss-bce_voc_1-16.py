# Table 9 (loss): BCE only, VOC 1/16. Paper: 76.1 (all three: 78.3).
_base_ = ['./cgs_voc_1-16.py']
model = dict(decode_head=dict(loss_weights=dict(dice=0.0, soft_iou=0.0)))
