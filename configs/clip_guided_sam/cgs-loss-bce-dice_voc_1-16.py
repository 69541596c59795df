# Table 9 (loss): BCE + Dice only, VOC 1/16. Paper: 77.7 (all three: 78.3).
_base_ = ['./cgs_voc_1-16.py']
model = dict(decode_head=dict(loss_weights=dict(soft_iou=0.0)))
