from .soft_iou_loss import SoftIoULoss

__all__ = ['SoftIoULoss']
