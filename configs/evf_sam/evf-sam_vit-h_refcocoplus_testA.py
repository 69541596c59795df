# EVF-SAM (SAM ViT-H + BEiT-3-L) tested on RefCOCO+ testA (unc): paper cIoU 80.0 (docs/evf_sam.md).
# As written it tests the released YxZhang/evf-sam weights (downloaded on first use):
#   python tools/test.py configs/evf_sam/evf-sam_vit-h_refcocoplus_testA.py none
# and a model trained with evf-sam_vit-h_refcoco-mix.py:
#   python tools/test.py configs/evf_sam/evf-sam_vit-h_refcocoplus_testA.py work_dirs/evf-sam_vit-h_refcoco-mix/best_cIoU_iter_N.pth
_base_ = ['./evf-sam_vit-h_refcoco-mix.py']
paper_ciou = 80.0
model = dict(checkpoint='https://huggingface.co/YxZhang/evf-sam/resolve/main/pytorch_model.bin')
test_dataloader = dict(dataset=dict(dataset='refcoco+', split='testA'))
