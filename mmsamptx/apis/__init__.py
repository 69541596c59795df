from .checkpoint import CheckpointError, load_trained_checkpoint, read_checkpoint
from .errors import InputError
from .images import ImageError, load_image
from .inference import init_segmentor, save_mask, save_overlay, segment
from .model_zoo import list_models, resolve_config
from .prediction import Prediction
from .text_sam import TextSAM, build_model

__all__ = ['TextSAM', 'Prediction', 'build_model', 'list_models', 'resolve_config',
           'load_trained_checkpoint', 'read_checkpoint', 'load_image', 'InputError',
           'CheckpointError', 'ImageError', 'init_segmentor', 'segment', 'save_overlay', 'save_mask']
