"""A cache of SAM image embeddings for models whose image encoder is frozen and unadapted."""
import hashlib
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MMLogger

#: Metainfo entries of mmseg's packed samples that describe how the pixels were made
#: (file and geometric transform). Anything else that changes pixels (random
#: crops, photometric distortion) is covered by the hash of the input tensor.
PIXEL_KEYS = ('img_path', 'ori_shape', 'img_shape', 'pad_shape', 'scale_factor', 'flip',
              'flip_direction', 'crop_bbox')
KINDS = ('memory', 'disk')


def _jsonable(value):
    """Tuples, numpy scalars and arrays as plain JSON values (for stable keys)."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, 'tolist'):
        return value.tolist()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def tensor_digest(tensor: torch.Tensor) -> str:
    """blake2b of a tensor's dtype, shape and bytes (moved to the CPU)."""
    t = tensor.detach().contiguous().cpu()
    h = hashlib.blake2b(f'{t.dtype}:{tuple(t.shape)}:'.encode(), digest_size=20)
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def weights_digest(named_tensors: Iterable[Tuple[str, torch.Tensor]], extra: str = '') -> str:
    """blake2b over named tensors in name order, plus a description (e.g. the config)."""
    h = hashlib.blake2b(extra.encode(), digest_size=20)
    for name, t in sorted(named_tensors, key=lambda kv: kv[0]):
        h.update(name.encode())
        h.update(tensor_digest(t).encode())
    return h.hexdigest()


class ImageEmbeddingCache:
    """Image embeddings stored in bf16, in memory or on disk, filled on first use.

    An entry's key is made of (1) the image file and its transform, i.e. the
    :data:`PIXEL_KEYS` of the data sample's metainfo, (2) a hash of the input
    tensor itself, so a transform the metainfo does not record (a random crop,
    a photometric distortion) gives another key, never a stale embedding, and
    (3) a hash of the encoder's weights and settings, computed once and
    recomputed after :meth:`invalidate_weights` (the segmentor calls it when
    weights are loaded). Deterministic pipelines (resize, pad, flip) therefore
    hit from the second epoch on; random augmentation only misses.

    Every returned embedding, also on a miss, is the stored bf16 value cast
    back to float32, so a run gives the same numbers whether an entry was
    computed or read.

    Disk entries are ``<dir>/<sha256 of the key>.pt`` holding ``{'key': ...,
    'embedding': ...}``, written atomically and read with
    ``torch.load(weights_only=True)``; an unreadable (truncated) file or one
    whose stored key differs is recomputed and rewritten, with a warning.

    Args:
        type: ``'memory'`` (a dict in this process, unbounded) or ``'disk'``.
        dir: the folder of disk entries (created; must be writable).
        dtype: storage dtype, ``'bfloat16'`` (default) or ``'float32'``.
    """

    def __init__(self, type: str = 'memory', dir: Optional[str] = None,
                 dtype: str = 'bfloat16') -> None:
        if type not in KINDS:
            raise ValueError(f'embedding_cache.type must be one of {KINDS}, got {type!r}')
        if dtype not in ('bfloat16', 'float32'):
            raise ValueError(f"embedding_cache.dtype must be 'bfloat16' or 'float32', got {dtype!r}")
        self.kind = type
        self.dtype = getattr(torch, dtype)
        self.dir = None
        if type == 'disk':
            if not dir:
                raise ValueError("embedding_cache type='disk' needs dir=<folder for the entries>")
            self.dir = os.fspath(dir)
            self.check_writable()
        self._memory: Dict[str, torch.Tensor] = {}
        self._weights: Optional[str] = None
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_cfg(cls, cfg: dict) -> 'ImageEmbeddingCache':
        """Build from ``dict(type='memory' | 'disk', dir=..., dtype=...)``."""
        if not isinstance(cfg, dict):
            raise ValueError(f"embedding_cache must be a dict like dict(type='memory'), got {cfg!r}")
        return cls(**cfg)

    def check_writable(self) -> None:
        """Create ``dir`` and a file in it; raise a ``ValueError`` naming the folder if that fails."""
        try:
            os.makedirs(self.dir, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.dir):
                pass
        except OSError as e:
            raise ValueError(f'embedding_cache dir {self.dir!r} is not a writable folder '
                             f'({type(e).__name__}: {e})') from e

    # ------------------------------------------------------------------ keys
    def invalidate_weights(self) -> None:
        """Forget the weights hash: the next lookup recomputes it (call after loading weights)."""
        self._weights = None

    def sample_key(self, meta: dict, image: torch.Tensor, weights: str) -> str:
        """A JSON key for one image: (3, H, W) input with its metainfo, under encoder ``weights``."""
        fields = {k: _jsonable(meta[k]) for k in PIXEL_KEYS if k in meta}
        return json.dumps(dict(weights=weights, input=tensor_digest(image), **fields), sort_keys=True)

    def _path(self, key: str) -> str:
        return osp.join(self.dir, hashlib.sha256(key.encode()).hexdigest() + '.pt')

    # ------------------------------------------------------------ storage
    def _read(self, key: str) -> Optional[torch.Tensor]:
        if self.kind == 'memory':
            return self._memory.get(key)
        path = self._path(key)
        if not osp.isfile(path):
            return None
        try:
            entry = torch.load(path, map_location='cpu', weights_only=True)
            if not isinstance(entry, dict) or not isinstance(entry.get('embedding'), torch.Tensor):
                raise ValueError('not an embedding entry')
            if entry.get('key') != key:
                raise ValueError('its stored key differs from the requested one')
            return entry['embedding']
        except Exception as e:  # a truncated or foreign file: never trust it
            msg = (f'embedding cache entry {path} is unreadable ({type(e).__name__}: {e}); '
                   'recomputing it')
            warnings.warn(msg)
            MMLogger.get_current_instance().warning(msg)
            return None

    def _write(self, key: str, value: torch.Tensor) -> None:
        if self.kind == 'memory':
            self._memory[key] = value
            return
        from ...utils import atomic_torch_save
        try:
            atomic_torch_save(dict(key=key, embedding=value), self._path(key))
        except OSError as e:
            raise ValueError(f'embedding_cache dir {self.dir!r} is not writable: '
                             f'{type(e).__name__}: {e}') from e

    @property
    def num_entries(self) -> int:
        """Entries stored (in memory, or ``.pt`` files in ``dir``)."""
        if self.kind == 'memory':
            return len(self._memory)
        return sum(1 for n in os.listdir(self.dir) if n.endswith('.pt'))

    # ------------------------------------------------------------- lookup
    def fetch(self, inputs: torch.Tensor, metas: Sequence[dict],
              compute: Callable[[torch.Tensor], torch.Tensor],
              weights: Callable[[], str]) -> torch.Tensor:
        """Embeddings of a batch, from the cache where present, computed (in one batch) elsewhere.

        Args:
            inputs: (B, 3, H, W) encoder inputs.
            metas: B metainfo dicts (``data_sample.metainfo``).
            compute: (b, 3, H, W) -> (b, C, h, w), the encoder and neck.
            weights: returns the encoder weights hash (called once until
                :meth:`invalidate_weights`).

        Returns:
            (B, C, h, w) float32 on ``inputs.device``.
        """
        if len(metas) != inputs.shape[0]:
            raise ValueError(f'{inputs.shape[0]} images but {len(metas)} metainfo dicts')
        if self._weights is None:
            self._weights = weights()
        keys = [self.sample_key(m, x, self._weights) for m, x in zip(metas, inputs)]
        found: List[Optional[torch.Tensor]] = [self._read(k) for k in keys]
        missing = [i for i, v in enumerate(found) if v is None]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            with torch.no_grad():
                fresh = compute(inputs[missing]).detach()
            for i, emb in zip(missing, fresh):
                found[i] = emb.to('cpu', self.dtype).clone()
                self._write(keys[i], found[i])
        return torch.stack(found).to(inputs.device, torch.float32)
