# Table 9 (loss): Dice + IoU only, VOC 1/16. Paper: 76.8 (all three: 78.3).
_base_ = ['./cgs_voc_1-16.py']
model = dict(decode_head=dict(loss_weights=dict(mask=0.0)))
