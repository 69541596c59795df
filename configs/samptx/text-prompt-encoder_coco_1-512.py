_base_ = ['./samptx_coco_1-512.py', './_base_/text-prompt-encoder.py']
