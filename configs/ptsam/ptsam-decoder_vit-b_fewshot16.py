# PTSAM (arXiv 2504.16739), mask-decoder prompt tuning (2,048 trainable; ./_base_/ptsam_decoder.py) on
# few-shot binary segmentation: trained on 16 images without any point, tested without any prompt
# ('auto'). The encoder's embeddings are cached (memory; use type='disk', dir=... to keep them across runs).
_base_ = ['./_base_/ptsam_decoder.py', './_base_/fewshot16_binary.py']
model = dict(class_names='FewShotBinaryDataset')  # ('background', 'foreground')
