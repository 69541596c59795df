_base_ = ['./samptx_coco_1-512.py', './_base_/text-mask-decoder.py']
