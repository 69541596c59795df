_base_ = ['../samptx_ade20k_1-64.py', './_base_/parallel-adapter.py']
