# EVF-SAM (SAM ViT-H + BEiT-3-L) tested on RefCOCOg test (umd): paper cIoU 78.3 (docs/evf_sam.md).
# As written it tests the released YxZhang/evf-sam weights (downloaded on first use):
#   python tools/test.py configs/evf_sam/evf-sam_vit-h_refcocog_test.py none
# and a model trained with evf-sam_vit-h_refcoco-mix.py:
#   python tools/test.py configs/evf_sam/evf-sam_vit-h_refcocog_test.py work_dirs/evf-sam_vit-h_refcoco-mix/best_cIoU_iter_N.pth
_base_ = ['./evf-sam_vit-h_refcoco-mix.py']
paper_ciou = 78.3
model = dict(checkpoint='https://huggingface.co/YxZhang/evf-sam/resolve/main/pytorch_model.bin')
test_dataloader = dict(dataset=dict(dataset='refcocog', split='test'))
