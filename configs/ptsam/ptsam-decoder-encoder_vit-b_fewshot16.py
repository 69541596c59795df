# PTSAM, decoder + image-encoder prompt tuning (75,776 trainable; ./_base_/ptsam_decoder_encoder.py) on
# few-shot binary segmentation. No embedding cache: the prompted encoder changes in training.
_base_ = ['./_base_/ptsam_decoder_encoder.py', './_base_/fewshot16_binary.py']
model = dict(class_names='FewShotBinaryDataset')  # ('background', 'foreground')
