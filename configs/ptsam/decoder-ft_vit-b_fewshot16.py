# Baseline at the same data: SAM ViT-B's mask decoder fine-tuned (4,058,340 trainable), one point
# prompt per class sampled from the ground truth in training and test ('prompted'), encoder frozen
# and cached. Unlike PTSAM it needs a user point per object class at test time.
_base_ = [
    '../_base_/models/sam_vit_b.py', './_base_/fewshot16_binary.py',
    './_base_/ptsam_schedule.py', '../_base_/default_runtime.py'
]
model = dict(
    class_names='FewShotBinaryDataset',
    backbone=dict(adapter_cfg=None),
    text_encoder=None,
    train_cfg=dict(_delete_=True, classes_per_image=2, num_points=1),
    test_cfg=dict(_delete_=True, mode='prompted', num_points=1, class_chunk=2),
    embedding_cache=dict(type='memory'))
