# Text ablation: CLIPSurgery frozen (its visual attention not fine-tuned), VOC 1/16. Paper: 73.7.
_base_ = ['./cgs_voc_1-16.py']
model = dict(guide=dict(finetune_attn_blocks=0))
