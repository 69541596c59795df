"""Images in: a path, an RGB array or a PIL image, always returned as (H, W, 3) uint8 RGB."""
import os.path as osp
from typing import Any

import numpy as np

from .errors import InputError


class ImageError(InputError):
    """An image that cannot be read or is not a colour picture."""


def _decode(path: str) -> np.ndarray:
    """Decode a file as mmseg's ``LoadImageFromFile`` does (OpenCV), in RGB; PIL for the
    formats OpenCV does not read."""
    import mmcv
    from PIL import Image
    with open(path, 'rb') as f:
        data = f.read()
    try:
        img = mmcv.imfrombytes(data, flag='color', channel_order='rgb', backend='cv2')
    except Exception:  # OpenCV asserts on some malformed input
        img = None
    if img is not None:
        return img
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert('RGB'))
    except Exception as e:  # PIL raises many types for undecodable bytes
        raise ImageError(f'image file {path} cannot be decoded as an image '
                         f'({type(e).__name__}: {" ".join(str(e).split())})') from None


def check_image_file(path: str) -> None:
    """Cheap check before a model is built: the file exists, is not empty, and its header
    is an image's (the pixels are decoded later, by :func:`load_image`)."""
    from PIL import Image
    if not osp.isfile(path):
        raise ImageError(f'image file not found: {path}')
    if osp.getsize(path) == 0:
        raise ImageError(f'image file {path} is empty')
    try:
        with Image.open(path):
            pass
    except Exception:
        _decode(path)  # a format only OpenCV reads passes; anything else is named


def load_image(image: Any, name: str = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ``image``.

    Args:
        image: a file path (any format PIL or OpenCV decodes), an RGB array (H, W, 3)
            (or grey (H, W); RGBA (H, W, 4) drops alpha) of uint8, or of floats in
            [0, 1], or a ``PIL.Image``. Arrays are taken as RGB: no BGR swap happens.
        name: how errors name the image (default: the path, or 'the image').
    """
    from PIL import Image
    what = name or (str(image) if isinstance(image, (str, bytes)) or hasattr(image, '__fspath__')
                    else 'the image')
    if isinstance(image, (str, bytes)) or hasattr(image, '__fspath__'):
        path = str(image)
        if not osp.isfile(path):
            raise ImageError(f'image file not found: {path}')
        if osp.getsize(path) == 0:
            raise ImageError(f'image file {path} is empty')
        image = _decode(path)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert('RGB'))
    if not isinstance(image, np.ndarray):
        raise ImageError(f'{what} is a {type(image).__name__}; expected a path, an RGB array '
                         '(H, W, 3) or a PIL image')
    arr = image
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f'{what} has shape {tuple(image.shape)}; expected (H, W, 3) RGB')
    arr = arr[..., :3]
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageError(f'{what} is empty ({arr.shape[0]}x{arr.shape[1]} pixels)')
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and 0 <= arr.min() and arr.max() <= 1:
            arr = (arr * 255).round()
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise ImageError(f'{what} has values outside 0..255 ({arr.dtype})')
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)
