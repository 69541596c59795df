from .inference import init_segmentor, save_mask, save_overlay, segment

__all__ = ['init_segmentor', 'segment', 'save_overlay', 'save_mask']
