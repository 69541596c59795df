# EVF-SAM (SAM ViT-H + BEiT-3-L) tested on RefCOCO+ val (unc): paper cIoU 76.5 (docs/evf_sam.md).
# As written it tests the released YxZhang/evf-sam weights (downloaded on first use):
#   python tools/test.py configs/evf_sam/evf-sam_vit-h_refcocoplus_val.py none
# and a model trained with evf-sam_vit-h_refcoco-mix.py:
#   python tools/test.py configs/evf_sam/evf-sam_vit-h_refcocoplus_val.py work_dirs/evf-sam_vit-h_refcoco-mix/best_cIoU_iter_N.pth
_base_ = ['./evf-sam_vit-h_refcoco-mix.py']
paper_ciou = 76.5
model = dict(checkpoint='https://huggingface.co/YxZhang/evf-sam/resolve/main/pytorch_model.bin')
test_dataloader = dict(dataset=dict(dataset='refcoco+', split='val'))
