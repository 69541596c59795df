"""The head's losses: the SAM-PTx authors' BCE + Dice + soft IoU (§6.5) by hand, SoftIoULoss,
SAM's defaults."""
import pytest
import torch
import torch.nn.functional as F
from mmseg.models.losses.tversky_loss import binary_tversky_loss
from mmseg.registry import MODELS

from mmsamptx.models.heads import SAMPromptableHead
from mmsamptx.models.losses import SoftIoULoss

AUTHORS_LOSS = dict(mask_loss='bce', loss_weights=dict(mask=1, dice=1, iou=0, soft_iou=1),
                    dice_eps=1e-6, loss_size='mask')


def authors_head(**kw):
    return SAMPromptableHead(image_size=64, **dict(AUTHORS_LOSS, **kw))


def authors_loss_by_hand(logits, target, valid=None):
    """BCE (mean over counted pixels) + Dice + soft IoU, as the authors write them, (B, h, w) inputs."""
    valid = torch.ones_like(target) if valid is None else valid
    p = logits.sigmoid() * valid
    g = target * valid
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
    bce = ((bce * valid).flatten(1).sum(1) / valid.flatten(1).sum(1)).mean()
    inter, sp, sg = (p * g).flatten(1).sum(1), p.flatten(1).sum(1), g.flatten(1).sum(1)
    dice = 1 - (2 * inter / (sp + sg + 1e-6)).mean()
    soft_iou = 1 - ((inter + 1e-6) / (sp + sg - inter + 1e-6)).mean()
    return bce, dice, soft_iou


def random_case(b=3, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, 1, size, size, generator=g) * 3
    targets = (torch.rand(b, size, size, generator=g) > 0.6).long()
    return logits, targets, g


def test_authors_loss_equals_hand_computation_without_ignore():
    logits, targets, _ = random_case()
    losses = authors_head().loss(logits, torch.rand(3, 1), targets)
    assert set(losses) == {'loss_mask', 'loss_dice', 'loss_iou', 'loss_soft_iou'}
    assert losses['loss_iou'].item() == 0   # no IoU-head term
    bce, dice, soft_iou = authors_loss_by_hand(logits[:, 0], targets.float())
    # without ignore pixels BCE is the plain mean over all B x h x w pixels
    assert torch.allclose(bce, F.binary_cross_entropy_with_logits(logits[:, 0], targets.float()))
    assert (losses['loss_mask'] - bce).abs() <= 1e-5
    assert (losses['loss_dice'] - dice).abs() <= 1e-5
    assert (losses['loss_soft_iou'] - soft_iou).abs() <= 1e-5
    assert (sum(losses.values()) - (bce + dice + soft_iou)).abs() <= 1e-5


def test_authors_loss_samples_targets_down_to_the_mask_size():
    logits, _, g = random_case(size=16)
    big = (torch.rand(3, 64, 64, generator=g) > 0.5).long()
    losses = authors_head().loss(logits, torch.rand(3, 1), big)
    small = big[:, 2::4, 2::4].float()   # nearest at pixel centres: 4i + 2
    bce, dice, soft_iou = authors_loss_by_hand(logits[:, 0], small)
    assert (losses['loss_mask'] - bce).abs() <= 1e-5
    assert (losses['loss_dice'] - dice).abs() <= 1e-5
    assert (losses['loss_soft_iou'] - soft_iou).abs() <= 1e-5


def test_authors_loss_with_ignore_pixels_counts_only_the_others():
    logits, targets, g = random_case()
    ignored = torch.rand(3, 16, 16, generator=g) > 0.7
    targets = targets.masked_fill(ignored, 255)
    losses = authors_head().loss(logits, torch.rand(3, 1), targets, ignore_index=255)
    valid = (~ignored).float()
    bce, dice, soft_iou = authors_loss_by_hand(logits[:, 0], (targets == 1).float(), valid)
    assert (losses['loss_mask'] - bce).abs() <= 1e-5
    assert (losses['loss_dice'] - dice).abs() <= 1e-5
    assert (losses['loss_soft_iou'] - soft_iou).abs() <= 1e-5
    # ignore pixels are not negatives: treating them as 0 gives another loss
    as_negatives = authors_loss_by_hand(logits[:, 0], (targets == 1).float())
    assert (as_negatives[0] - bce).abs() > 1e-3


def test_authors_loss_gradients_flow_and_the_iou_head_gets_zero():
    logits, targets, _ = random_case()
    logits.requires_grad_(True)
    iou_pred = torch.rand(3, 1, requires_grad=True)
    losses = authors_head().loss(logits, iou_pred, targets)
    sum(losses.values()).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert torch.equal(iou_pred.grad, torch.zeros_like(iou_pred))   # in the graph, zero gradient
    for key in ('loss_mask', 'loss_dice', 'loss_soft_iou'):   # each term alone reaches the logits
        x = logits.detach().requires_grad_(True)
        authors_head().loss(x, iou_pred.detach(), targets)[key].backward()
        assert x.grad.abs().sum() > 0, key


def test_authors_loss_picks_the_best_of_three_masks_by_all_three_terms():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 3, 16, 16, generator=g) * 3
    targets = (torch.rand(2, 16, 16, generator=g) > 0.5).long()
    losses = authors_head(multimask_output=True).loss(logits, torch.rand(2, 3), targets)
    per = torch.stack([torch.stack([sum(authors_loss_by_hand(logits[i:i + 1, j], targets[i:i + 1].float()))
                                    for j in range(3)]) for i in range(2)])
    assert (sum(losses.values()) - per.min(1).values.mean()).abs() <= 1e-5


def test_dice_eps_differs_from_the_authors_numerator_by_at_most_eps_over_the_sums():
    logits, targets, _ = random_case()
    p, t = logits[:, 0].sigmoid(), targets.float()
    for eps in (1e-6, 1.0):
        ours = MODELS.build(dict(type='DiceLoss', use_sigmoid=True, activate=False, naive_dice=True,
                                 eps=eps, reduction='none'))(p[:, None], t[:, None])
        inter, s = (p * t).flatten(1).sum(1), p.flatten(1).sum(1) + t.flatten(1).sum(1)
        authors = 1 - 2 * inter / (s + eps)
        assert ((ours - authors).abs() <= eps / s + 1e-7).all()


def test_soft_iou_is_mmseg_tversky_with_alpha_beta_one():
    g = torch.Generator().manual_seed(5)
    p = torch.rand(4, 8, 8, generator=g)
    t = (torch.rand(4, 8, 8, generator=g) > 0.5).float()
    ours = SoftIoULoss(eps=1e-6, reduction='none')(p, t)
    tversky = binary_tversky_loss(p, t, valid_mask=torch.ones_like(t), alpha=1.0, beta=1.0,
                                  smooth=1e-6, reduction='none')
    assert (ours - tversky).abs().max() <= 1e-6
    inter = (p * t).flatten(1).sum(1)
    by_hand = 1 - (inter + 1e-6) / (p.flatten(1).sum(1) + t.flatten(1).sum(1) - inter + 1e-6)
    assert (ours - by_hand).abs().max() <= 1e-6
    built = MODELS.build(dict(type='SoftIoULoss', use_sigmoid=True, loss_weight=2.0))
    assert (built(torch.logit(p), t) - 2 * by_hand.mean()).abs() <= 1e-5


def test_soft_iou_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reduction must be one of .*got 'avg'"):
        SoftIoULoss(reduction='avg')
    with pytest.raises(ValueError, match=r'pred \(2, 4\) and target \(2, 5\)'):
        SoftIoULoss()(torch.rand(2, 4), torch.rand(2, 5))


def test_default_losses_unchanged():
    """SAM's focal 20 + Dice (eps 1) + IoU MSE: three terms, no soft IoU computed."""
    logits, targets, _ = random_case()
    iou_pred = torch.rand(3, 1)
    losses = SAMPromptableHead(image_size=64).loss(logits, iou_pred, targets)
    assert set(losses) == {'loss_mask', 'loss_dice', 'loss_iou'}
    up = F.interpolate(logits, size=(16, 16), mode='bilinear', align_corners=False)[:, 0]
    t = targets.float()
    p = up.sigmoid()
    focal = torch.stack([F.binary_cross_entropy_with_logits(up[i], t[i], reduction='none') for i in range(3)])
    pt = p * t + (1 - p) * (1 - t)
    focal = ((0.25 * t + 0.75 * (1 - t)) * (1 - pt) ** 2 * focal).flatten(1).mean(1).mean()
    inter, s = (p * t).flatten(1).sum(1), p.flatten(1).sum(1) + t.flatten(1).sum(1)
    dice = (1 - (2 * inter + 1) / (s + 1)).mean()
    hard = (up > 0).float()
    true_iou = (hard * t).flatten(1).sum(1) / (hard + t).clamp(max=1).flatten(1).sum(1)
    assert (losses['loss_mask'] - 20 * focal).abs() <= 1e-5
    assert (losses['loss_dice'] - dice).abs() <= 1e-5
    assert (losses['loss_iou'] - F.mse_loss(iou_pred[:, 0], true_iou)).abs() <= 1e-6


def test_unknown_loss_term_is_named():
    valid = r"\('mask', 'dice', 'iou', 'soft_iou'\)"
    with pytest.raises(ValueError, match=r"unknown terms \['focal'\]; valid terms are " + valid):
        SAMPromptableHead(image_size=64, loss_weights=dict(focal=1))
