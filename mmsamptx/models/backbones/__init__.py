from .sam_image_encoder import SAM_ENCODER_ARCHS, SAMImageEncoder

__all__ = ['SAMImageEncoder', 'SAM_ENCODER_ARCHS']
