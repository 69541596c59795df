"""Frozen open_clip text tower that turns class names into class embeddings.

The embedding is built by one configurable chain (prompt templates, optional
synonyms, optional subtraction of CLIP Surgery's redundant feature, optional
L2 normalisation); its default is the usual CLIP prompt ensemble and
:data:`SAMPTX_TEXT_ENCODER` is the SAM-PTx authors' bare-name embedding.

Importing this module also registers the tiny test/demo architecture
``'mmsamptx-tiny-clip'`` (``model_configs/mmsamptx-tiny-clip.json``) with
open_clip through its public :func:`open_clip.add_model_config`, so
``open_clip.create_model('mmsamptx-tiny-clip')`` and
``open_clip.get_tokenizer('mmsamptx-tiny-clip')`` work like any built-in name.
"""
import hashlib
import json
import logging
import os
import os.path as osp
import warnings
from typing import Dict, Mapping, Optional, Sequence, Tuple

import open_clip
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from open_clip import OPENAI_IMAGENET_TEMPLATES
from open_clip import pretrained as oc_pretrained
from torch import Tensor, nn

from mmseg.registry import MODELS
from mmsamptx.utils import atomic_torch_save

MODEL_CONFIG_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'model_configs')
TINY_MODEL_NAME = 'mmsamptx-tiny-clip'

if TINY_MODEL_NAME not in open_clip.list_models():
    # Public open_clip API: appends the folder to its config search path and
    # rescans it; every ``*.json`` there becomes a model name (its file stem).
    open_clip.add_model_config(MODEL_CONFIG_DIR)

DEFAULT_TEMPLATES = (
    'a photo of a {}.',
    'a photo of the {}.',
    'a photo of a small {}.',
    'a photo of a large {}.',
    'there is a {} in the scene.',
)

# open_clip's 80 OpenAI ImageNet prompt templates, as '{}' format strings (open_clip
# keeps them as one-argument callables). The default prompt list for the redundant
# feature; CLIP Surgery uses its own 85-template list, see OpenCLIPTextEncoder.
OPENAI_IMAGENET_PROMPTS = tuple(template('{}') for template in OPENAI_IMAGENET_TEMPLATES)

# The SAM-PTx authors' text embedding [samptx-authors.md §5.2, §5.5]: OpenAI CLIP
# ViT-B/16 (QuickGELU, as trained), the bare class name, the raw EOT feature
# L2-normalised. Whether SAM-PTx subtracted the redundant feature is not stated;
# set subtract_redundant=True for the chain of the authors' code (§5.4).
SAMPTX_TEXT_ENCODER = dict(
    type='OpenCLIPTextEncoder',
    model_name='ViT-B-16-quickgelu',
    pretrained='openai',
    templates=('{}', ),
    ensemble_normalize=False,
    subtract_redundant=False,
    normalize=True)

# Suffixes that mark a ``pretrained`` string as a file path rather than a tag.
_CHECKPOINT_SUFFIXES = ('.pt', '.pth', '.bin', '.safetensors', '.ckpt')
# open_clip loads big_vision (.npz/.npy) weights straight into the image tower,
# which this module drops.
_UNSUPPORTED_SUFFIXES = ('.npz', '.npy')
_CACHE_FORMAT = 2
_TEXT_BATCH = 256  # prompts per encode_text call; bounds activation memory


class _DropRandomInitNotice(logging.Filter):
    """Hide open_clip's "initialized randomly" notice: weights load later, in init_weights()."""

    def filter(self, record):
        return not str(record.msg).startswith('No pretrained weights loaded for model')


def _is_str_sequence(value):
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _check_flag(option: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f'{option} must be True or False, got {value!r}.')
    return value


@MODELS.register_module()
class OpenCLIPTextEncoder(BaseModule):
    """Frozen open_clip text encoder that maps class names to (N, D) class embeddings.

    Each class name becomes one row by this chain (every step a constructor
    option; the defaults give the usual CLIP prompt ensemble):

    1. The strings of the class: ``synonyms[name]`` if given, else ``[name]``.
    2. ``e[s, k] = encode_text(templates[k].format(s))``: the raw text feature
       (the EOT token after ``ln_final``, times ``text_projection``; open_clip's
       ``encode_text(tokens, normalize=False)``) for every string ``s`` and
       template ``k``.
    3. Per string, ``t_s = mean_k e[s, k]``. With ``ensemble_normalize`` it is the
       CLIP prompt ensemble instead: ``t_s = n(mean_k n(e[s, k]))`` with
       ``n(x) = x / ||x||``.
    4. ``t = mean_s t_s``, the plain mean over the strings of the class.
    5. With ``subtract_redundant``: ``t = t - r`` (see :meth:`redundant_feature`).
    6. With ``normalize``: ``t = t / ||t||``.

    The SAM-PTx authors' code [samptx-authors.md §5] computes, with the OpenAI
    CLIP ViT-B/16: the bare class name (``templates=('{}',)``, no ensemble), the
    plain mean over PASCAL VOC synonyms (§5.3), the redundant feature subtracted
    and the result L2-normalised (§5.5). :data:`SAMPTX_TEXT_ENCODER` is that
    chain without the subtraction, which the SAM-PTx paper does not state::

        text_encoder=dict(type='OpenCLIPTextEncoder', model_name='ViT-B-16-quickgelu',
                          pretrained='openai', templates=('{}',), ensemble_normalize=False,
                          subtract_redundant=False, normalize=True)

    ``subtract_redundant=True`` gives the authors' code's chain (with the caveat
    on ``redundant_templates`` below); ``normalize=False`` as well leaves
    ``t_raw - r``, and with ``subtract_redundant=False`` the raw ``t_raw``.
    The OpenAI CLIP is ``'ViT-B-16-quickgelu'`` here: its weights were trained
    with QuickGELU, and ``'ViT-B-16'`` builds GELU (a warning says so).

    Building the module never touches the disk or the network: the open_clip
    model is created with random weights and only its text path is kept (the
    image tower is dropped). Weights are loaded by :meth:`init_weights`, as
    mmengine runners do.

    All parameters are frozen (``requires_grad=False``) and the CLIP model stays
    in eval mode whatever :meth:`train` is given. Embeddings are cached in
    memory per (weights, options, class names) and, with ``cache_dir``, on
    disk as well; every option above is part of the key.

    Class names are used exactly as given: underscores and hyphens are NOT
    replaced (``'traffic_light'`` is tokenised as written). Rewrite names in
    the dataset metainfo or the config if you want ``'traffic light'``. Prompts
    longer than the model's context length (77 tokens for CLIP) are truncated
    by the open_clip tokenizer.

    Args:
        model_name (str): An open_clip architecture name from
            ``open_clip.list_models()``, e.g. ``'ViT-B-16-quickgelu'``, or the
            tiny ``'mmsamptx-tiny-clip'`` (width 64, 2 layers, embed_dim 64;
            for tests and CPU demos). Names whose text tower comes from Hugging
            Face transformers, and ``'hf-hub:'``/``'local-dir:'`` schemas, are
            rejected because building them needs the network or the disk.
        pretrained (str, optional): Where :meth:`init_weights` loads weights
            from: an open_clip pretrained tag for ``model_name`` (see
            ``open_clip.list_pretrained_tags_by_model``; downloaded into
            open_clip's usual cache) or a local checkpoint path (a string that
            contains a path separator, starts with ``~`` or ends in .pt, .pth,
            .bin, .safetensors or .ckpt; relative paths are resolved against
            the working directory when the weights are loaded). ``None`` keeps
            the random initialisation. Defaults to None.
        templates (Sequence[str]): Prompt templates, each with exactly one
            ``'{}'`` where the class name goes; ``('{}',)`` is the bare name.
            Defaults to :data:`DEFAULT_TEMPLATES` (5 prompts).
        ensemble_normalize (bool): Step 3: L2-normalise each template's
            feature and the mean over templates (the CLIP prompt ensemble).
            False averages the raw features. Defaults to True.
        synonyms (Mapping[str, Sequence[str]], optional): Step 1: class name
            -> the strings that stand for it, the name itself included if it
            should count (e.g. ``{'aeroplane': ['aeroplane', 'airplane',
            'plane']}``). Names not in the mapping use themselves, so
            ``class_names`` stay plain strings. Defaults to None.
        subtract_redundant (bool): Step 5: subtract CLIP Surgery's redundant
            feature r (arXiv 2304.05653; samptx-authors.md §5.4).
            Defaults to False.
        redundant_templates (Sequence[str]): The templates that the empty
            string is filled into to compute r; used only with
            ``subtract_redundant``. Defaults to :data:`OPENAI_IMAGENET_PROMPTS`,
            open_clip's 80 OpenAI ImageNet templates. CLIP Surgery (and the
            SAM-PTx authors' code) use CLIP Surgery's own 85-template list
            instead, so with this default r differs from theirs; pass that list
            here for exact fidelity.
        normalize (bool): Step 6: L2-normalise the final embedding.
            Defaults to True.
        cache_dir (str, optional): Folder for the on-disk embedding cache
            (one small ``<sha256>.pt`` file per key). Defaults to None (memory
            cache only).
        init_cfg (dict or list[dict], optional): mmengine init config, applied
            before the ``pretrained`` weights are loaded (so they win).
            Defaults to None.

    Example::

        >>> enc = OpenCLIPTextEncoder('ViT-B-16', pretrained='/ckpts/vit_b16.bin')
        >>> enc.init_weights()
        >>> enc.encode(['road', 'sidewalk', 'building']).shape
        torch.Size([3, 512])
    """

    def __init__(self,
                 model_name: str,
                 pretrained: Optional[str] = None,
                 templates: Sequence[str] = DEFAULT_TEMPLATES,
                 *,
                 ensemble_normalize: bool = True,
                 synonyms: Optional[Mapping[str, Sequence[str]]] = None,
                 subtract_redundant: bool = False,
                 redundant_templates: Sequence[str] = OPENAI_IMAGENET_PROMPTS,
                 normalize: bool = True,
                 cache_dir: Optional[str] = None,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.model_name = model_name
        self._model_cfg = self._check_model_name(model_name)
        self.pretrained = pretrained
        self._pretrained_kind = self._check_pretrained(model_name, pretrained)
        self.templates = self._check_templates(templates)
        self.ensemble_normalize = _check_flag('ensemble_normalize', ensemble_normalize)
        self.synonyms = self._check_synonyms(synonyms)
        self.subtract_redundant = _check_flag('subtract_redundant', subtract_redundant)
        self.redundant_templates = self._check_templates(
            redundant_templates, option='redundant_templates')
        self.normalize = _check_flag('normalize', normalize)
        self.cache_dir = None if cache_dir is None else os.fspath(cache_dir)

        log_filter = _DropRandomInitNotice()
        root_logger = logging.getLogger()
        root_logger.addFilter(log_filter)
        try:
            clip = open_clip.create_model(
                model_name, pretrained=None, pretrained_image=False, pretrained_text=False,
                # on torch's current default device, so a build under
                # `with torch.device('meta')` counts parameters without memory
                device=torch.empty(()).device)
        finally:
            root_logger.removeFilter(log_filter)
        # Keep only the text path. Setting the image tower to None also makes
        # open_clip's load_checkpoint skip its image position-embedding resize.
        clip.visual = None
        clip.requires_grad_(False)
        clip.eval()
        self.clip = clip
        self._embed_dim = self._infer_embed_dim(clip)

        self._tokenizer = None  # built on first encode (it reads its vocabulary file)
        self._memory_cache: Dict[tuple, Tensor] = {}
        self._weights_version = 0
        self._weights_digest: Optional[str] = None
        self._weights_source = 'random-init'
        self._warned_unloaded = False
        self._redundant: Optional[Tuple[tuple, Tensor]] = None  # (key, r), see redundant_feature

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_model_name(model_name):
        """Return the open_clip config of ``model_name``; raise ValueError if unusable."""
        if not isinstance(model_name, str) or not model_name:
            raise ValueError(f'model_name must be a non-empty string, got {model_name!r}.')
        if model_name.startswith(('hf-hub:', 'local-dir:')):
            raise ValueError(
                f"model_name={model_name!r}: 'hf-hub:' and 'local-dir:' schemas are not "
                'supported because building them reads the network/disk. Use a built-in '
                "name and pass the weights file as pretrained=, or register your own "
                'json config with open_clip.add_model_config().')
        valid = open_clip.list_models()
        if model_name not in valid:
            raise ValueError(
                f'Unknown open_clip model_name {model_name!r}. Valid names: {valid}')
        cfg = open_clip.get_model_config(model_name)
        if cfg.get('text_cfg', {}).get('hf_model_name'):
            raise ValueError(
                f'model_name={model_name!r} has a Hugging Face transformers text tower '
                f"({cfg['text_cfg']['hf_model_name']!r}), which cannot be built without "
                'the network; choose a model with a native open_clip text transformer.')
        return cfg

    @staticmethod
    def _check_pretrained(model_name, pretrained):
        """Classify ``pretrained`` as None, 'tag' or 'file' without touching the disk."""
        if pretrained is None:
            return None
        if isinstance(pretrained, os.PathLike):
            pretrained = os.fspath(pretrained)
        if not isinstance(pretrained, str) or not pretrained:
            raise ValueError(
                f'pretrained must be None, an open_clip tag or a file path, got {pretrained!r}.')
        if oc_pretrained.is_pretrained_cfg(model_name, pretrained):
            cfg = oc_pretrained.get_pretrained_cfg(model_name, pretrained)
            model_quick_gelu = open_clip.get_model_config(model_name).get('quick_gelu', False)
            if cfg.get('quick_gelu', False) != model_quick_gelu:
                hint = (f" Use model_name='{model_name}-quickgelu' to match."
                        if cfg.get('quick_gelu', False)
                        and f'{model_name}-quickgelu' in open_clip.list_models() else '')
                warnings.warn(
                    f'QuickGELU mismatch: pretrained={pretrained!r} was trained with '
                    f"quick_gelu={cfg.get('quick_gelu', False)} but model_name={model_name!r} "
                    f'uses quick_gelu={model_quick_gelu}; its embeddings will be degraded '
                    f'(open_clip gives the same warning).{hint}', UserWarning)
            return 'tag'
        suffix = osp.splitext(pretrained)[1].lower()
        if suffix in _UNSUPPORTED_SUFFIXES:
            raise ValueError(
                f'pretrained={pretrained!r}: big_vision {suffix} checkpoints are not supported '
                '(open_clip loads them into the image tower, which is dropped here); convert '
                'it to an open_clip state dict first.')
        seps = {'/', os.sep} | ({os.altsep} if os.altsep else set())
        if any(s in pretrained for s in seps) or pretrained.startswith('~') \
                or suffix in _CHECKPOINT_SUFFIXES:
            return 'file'
        tags = oc_pretrained.list_pretrained_tags_by_model(model_name)
        raise ValueError(
            f'pretrained={pretrained!r} is not a known open_clip pretrained tag for '
            f'model_name={model_name!r} (valid tags: {tags}) and does not look like a '
            f"file path (a path must contain '/' or end in {', '.join(_CHECKPOINT_SUFFIXES)}; "
            f"use './{pretrained}' for a file in the working directory).")

    @staticmethod
    def _check_templates(templates, option: str = 'templates') -> Tuple[str, ...]:
        if not _is_str_sequence(templates):
            raise TypeError(
                f'{option} must be a sequence of strings such as ("a photo of a {{}}.",), '
                f'got {templates!r}.')
        if len(templates) == 0:
            raise ValueError(f'{option} is empty; give at least one template such as "{{}}".')
        for template in templates:
            if not isinstance(template, str) or template.count('{}') != 1:
                raise ValueError(
                    f"Each of {option} must be a string with exactly one '{{}}' for the class "
                    f'name, got {template!r}.')
            try:
                template.format('x')
            except (IndexError, KeyError, ValueError) as e:
                raise ValueError(
                    f'Template {template!r} in {option} is not a valid format string ({e}); '
                    "write literal braces as '{{' and '}}'.") from e
        return tuple(templates)

    @staticmethod
    def _check_synonyms(synonyms) -> Dict[str, Tuple[str, ...]]:
        """Return ``synonyms`` as {name: tuple of strings}; {} for None."""
        if synonyms is None:
            return {}
        if not isinstance(synonyms, Mapping):
            raise TypeError(
                "synonyms must be None or a dict {class name: [strings]}, such as "
                f"{{'aeroplane': ['aeroplane', 'airplane']}}, got {synonyms!r}.")
        checked = {}
        for name, strings in synonyms.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f'synonyms key {name!r} is not a non-empty class name.')
            if not _is_str_sequence(strings) or len(strings) == 0:
                raise ValueError(
                    f'synonyms[{name!r}] = {strings!r} must be a non-empty list of strings, '
                    f'such as [{name!r}, ...].')
            for s in strings:
                if not isinstance(s, str) or not s.strip():
                    raise ValueError(
                        f'synonyms[{name!r}] contains {s!r}, which is not a non-empty string.')
            checked[name] = tuple(strings)
        return checked

    @staticmethod
    def _check_class_names(class_names) -> Tuple[str, ...]:
        if not _is_str_sequence(class_names):
            raise TypeError(
                f'class_names must be a sequence of strings, got {type(class_names).__name__} '
                f'{class_names!r}.')
        if len(class_names) == 0:
            raise ValueError('class_names is empty; give at least one class name.')
        for i, name in enumerate(class_names):
            if not isinstance(name, str) or not name.strip():
                raise ValueError(
                    f'class_names[{i}] = {name!r} is not a non-empty string.')
        return tuple(class_names)

    @staticmethod
    def _infer_embed_dim(clip):
        text = getattr(clip, 'text', clip)  # CustomTextCLIP keeps its tower in .text
        proj = getattr(text, 'text_projection', None)
        if isinstance(proj, nn.Linear):
            return proj.out_features
        if isinstance(proj, Tensor):
            return proj.shape[-1]
        return text.ln_final.normalized_shape[-1]

    # -------------------------------------------------------------- properties
    @property
    def embed_dim(self) -> int:
        """Size D of one class embedding."""
        return self._embed_dim

    @property
    def device(self) -> torch.device:
        """Device of the text tower (where :meth:`encode` returns its tensors)."""
        return next(self.clip.parameters()).device

    @property
    def tokenizer(self):
        """``open_clip.get_tokenizer(model_name)``, built on first use."""
        if self._tokenizer is None:
            self._tokenizer = open_clip.get_tokenizer(self.model_name)
        return self._tokenizer

    def extra_repr(self) -> str:
        return (f'model_name={self.model_name!r}, pretrained={self.pretrained!r}, '
                f'templates={len(self.templates)}, '
                f'ensemble_normalize={self.ensemble_normalize}, '
                f'synonyms={len(self.synonyms)}, subtract_redundant={self.subtract_redundant}'
                + (f' ({len(self.redundant_templates)} templates)'
                   if self.subtract_redundant else '')
                + f', normalize={self.normalize}, cache_dir={self.cache_dir!r}')

    # ----------------------------------------------------------------- weights
    def init_weights(self):
        """Apply ``init_cfg`` (if any), then load the ``pretrained`` weights into the text path.

        The ``pretrained`` weights are loaded last so they win, as mmengine does
        for a ``Pretrained`` init_cfg. Like every mmengine ``init_weights`` it
        acts once; if loading fails it can be called again.

        Raises:
            FileNotFoundError: ``pretrained`` is a path and no file is there.
            RuntimeError: a tag's weights could not be downloaded (offline), or
                the checkpoint does not fit ``model_name``.
        """
        first_call = not self._is_init
        super().init_weights()
        if not first_call or self.pretrained is None:
            return
        try:
            if self._pretrained_kind == 'tag':
                path = self._download_tag()
            else:
                path = osp.abspath(osp.expanduser(os.fspath(self.pretrained)))
                if not osp.isfile(path):
                    raise FileNotFoundError(
                        f'pretrained checkpoint not found: {self.pretrained!r} '
                        f'(resolved to {path!r}) for OpenCLIPTextEncoder '
                        f'model_name={self.model_name!r}.')
            self._load_checkpoint(path)
        except BaseException:
            self._is_init = False
            raise
        self._weights_source = f'{self._pretrained_kind}:{self.pretrained}'

    def _download_tag(self) -> str:
        """Resolve the tag through open_clip's pretrained table; return the local file."""
        cfg = oc_pretrained.get_pretrained_cfg(self.model_name, self.pretrained)
        url, hf_hub = cfg.get('url', ''), cfg.get('hf_hub', '')
        # Same preference as open_clip.download_pretrained: the Hub when available.
        if hf_hub and oc_pretrained.has_hf_hub():
            repo_id, filename = os.path.split(hf_hub)
            filename = filename or 'open_clip_pytorch_model.bin'
            attempted = f'Hugging Face Hub repo {repo_id!r}'
            fetch = f'https://huggingface.co/{repo_id}/resolve/main/{filename}'
        else:
            filename = osp.basename(url)
            attempted = f'URL {url}'
            fetch = url
        try:
            path = oc_pretrained.download_pretrained(cfg)
        except Exception as e:
            raise RuntimeError(
                f'Could not download open_clip weights for model_name={self.model_name!r}, '
                f'pretrained={self.pretrained!r}: tried {attempted} ({type(e).__name__}: {e}). '
                f'If this machine is offline, download {fetch} on a machine with internet, '
                f"copy it here and pass its local path instead, e.g. pretrained='/path/to/"
                f"{filename}'.") from e
        if not path or not osp.isfile(path):
            raise RuntimeError(
                f'open_clip returned no weights file for model_name={self.model_name!r}, '
                f'pretrained={self.pretrained!r} (tried {attempted}); pass a local path as '
                f"pretrained='/path/to/{filename}'.")
        return path

    def _load_checkpoint(self, path: str):
        """Load an open_clip checkpoint with open_clip's own loader, ignoring image-tower keys."""
        try:
            incompatible = open_clip.load_checkpoint(
                self.clip, path, strict=False, weights_only=True, device='cpu')
        except Exception as e:
            hint = ''
            if 'TorchScript' in str(e):
                hint = (' It is a TorchScript archive (like the original OpenAI .pt files), '
                        'which cannot be loaded with weights_only=True; use the state-dict '
                        "copy that open_clip lists on the Hugging Face Hub (e.g. "
                        "'timm/vit_base_patch16_clip_224.openai', open_clip_pytorch_model.bin).")
            raise RuntimeError(
                f'Could not load open_clip weights from {path!r} into '
                f'model_name={self.model_name!r}: {type(e).__name__}: {e}.{hint}') from e
        finally:
            self._invalidate_weights()
        missing = list(incompatible.missing_keys)
        unexpected = [k for k in incompatible.unexpected_keys if not k.startswith('visual.')]
        if missing or unexpected:
            raise RuntimeError(
                f'Checkpoint {path!r} does not match the text tower of '
                f'model_name={self.model_name!r}: missing keys {missing[:10]}'
                f'{" ..." if len(missing) > 10 else ""}, unexpected keys {unexpected[:10]}'
                f'{" ..." if len(unexpected) > 10 else ""}.')

    def _invalidate_weights(self):
        """Forget everything derived from the current weights (memory cache, weights hash)."""
        self._weights_version += 1
        self._weights_digest = None
        self._memory_cache.clear()
        self._redundant = None

    def clear_cache(self):
        """Drop the in-memory embeddings (files in ``cache_dir`` are kept).

        Call it after changing the text weights in place; loading weights via
        :meth:`init_weights` or ``load_state_dict`` already does it.
        """
        self._invalidate_weights()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Both torch's and mmengine's loaders call this on every module before
        # its children, so a checkpoint that carries the text weights (e.g. a
        # saved segmentor) invalidates embeddings computed from the old ones.
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if any(k.startswith(prefix + 'clip.') for k in state_dict):
            self._invalidate_weights()
            self._weights_source = 'state_dict'

    def train(self, mode: bool = True):
        """Set ``mode`` on this module but keep the frozen CLIP model in eval mode."""
        super().train(mode)
        self.clip.eval()
        return self

    # ------------------------------------------------------------------ encode
    def forward(self, class_names: Sequence[str]) -> Tensor:
        """Same as :meth:`encode`."""
        return self.encode(class_names)

    def encode(self, class_names: Sequence[str]) -> Tensor:
        """Embed class names by the chain of the class docstring.

        Args:
            class_names (Sequence[str]): N non-empty names, used as given.

        Returns:
            Tensor: (N, D) float32 on :attr:`device` (D = :attr:`embed_dim`),
            each row of unit L2 norm when ``normalize``. A fresh tensor; the
            cache is not aliased.
        """
        names = self._check_class_names(class_names)
        self._warn_if_unloaded()
        dtype = next(self.clip.parameters()).dtype
        key = (self._weights_version, dtype, self._options(names))
        emb = self._memory_cache.get(key)
        if emb is None:
            emb = self._load_disk_cache(names) if self.cache_dir is not None else None
            if emb is None:
                emb = self._compute(names)
                if self.cache_dir is not None:
                    self._save_disk_cache(names, emb)
            self._memory_cache[key] = emb
        return emb.to(device=self.device, dtype=torch.float32, copy=True)

    def redundant_feature(self) -> Tensor:
        """CLIP Surgery's redundant feature r, (1, D) of unit norm.

        r = m / ||m|| with m = mean_k e_k / ||e_k||, where e_k is the raw text
        feature of the empty string filled into ``redundant_templates[k]``
        (CLIP Surgery's feature surgery, arXiv 2304.05653; samptx-authors.md
        §5.4). It is the direction that every prompt shares whatever the class,
        which ``subtract_redundant`` removes. Computed once per weights.

        Returns:
            Tensor: (1, D) float32 on :attr:`device`.
        """
        self._warn_if_unloaded()
        key = (self._weights_version, next(self.clip.parameters()).dtype,
               self.redundant_templates)
        if self._redundant is None or self._redundant[0] != key:
            prompts = [template.format('') for template in self.redundant_templates]
            feats = F.normalize(self._encode_prompts(prompts), dim=-1)
            self._redundant = (key, F.normalize(feats.mean(dim=0, keepdim=True), dim=-1))
        return self._redundant[1].to(device=self.device, copy=True)

    def _warn_if_unloaded(self):
        if self.pretrained is not None and self._weights_source == 'random-init' \
                and not self._warned_unloaded:
            warnings.warn(
                f'OpenCLIPTextEncoder.encode() called before init_weights(): '
                f'pretrained={self.pretrained!r} is not loaded, the text tower still has '
                'random weights.', UserWarning)
            self._warned_unloaded = True

    def _strings_of(self, name: str) -> Tuple[str, ...]:
        return self.synonyms.get(name, (name, ))

    def _options(self, names: Tuple[str, ...]) -> tuple:
        """Everything besides the weights that decides the embeddings of ``names``."""
        return (self.templates, self.ensemble_normalize,
                tuple(self._strings_of(name) for name in names), self.subtract_redundant,
                self.redundant_templates if self.subtract_redundant else None,
                self.normalize, names)

    def _encode_prompts(self, prompts) -> Tensor:
        """Raw text features of ``prompts`` (encode_text without normalisation): (P, D) float32."""
        tokens = self.tokenizer(prompts)  # (P, context_length)
        self.clip.eval()
        with torch.no_grad():
            return torch.cat([
                self.clip.encode_text(chunk.to(self.device), normalize=False).float()
                for chunk in tokens.split(_TEXT_BATCH)
            ])

    def _compute(self, names: Tuple[str, ...]) -> Tensor:
        """Run the chain of the class docstring; return (N, D) float32 on the CPU."""
        strings = [self._strings_of(name) for name in names]
        prompts = [template.format(s) for group in strings for s in group
                   for template in self.templates]
        feats = self._encode_prompts(prompts)  # (S * T, D), S strings in all
        feats = feats.view(-1, len(self.templates), feats.shape[-1])  # (S, T, D)
        if self.ensemble_normalize:
            per_string = F.normalize(F.normalize(feats, dim=-1).mean(dim=1), dim=-1)
        else:
            per_string = feats.mean(dim=1)  # (S, D)
        emb = torch.stack([group.mean(dim=0) for group in
                           per_string.split([len(group) for group in strings])])  # (N, D)
        if self.subtract_redundant:
            emb = emb - self.redundant_feature()
        if self.normalize:
            emb = F.normalize(emb, dim=-1)
        return emb.cpu()

    # -------------------------------------------------------------- disk cache
    def _weights_hash(self) -> str:
        """SHA-256 of the text-path tensors, computed once per weights version."""
        if self._weights_digest is None:
            h = hashlib.sha256()
            for name, tensor in sorted(self.clip.state_dict().items()):
                t = tensor.detach().cpu().contiguous().reshape(-1)
                h.update(f'{name}|{t.dtype}|{tuple(tensor.shape)}'.encode())
                h.update(t.view(torch.uint8).numpy().tobytes())
            self._weights_digest = h.hexdigest()
        return self._weights_digest

    def _disk_key(self, names: Tuple[str, ...]) -> str:
        # The weights identity is a hash of the tensors actually in use, so a
        # file is never reused across different random inits or checkpoints.
        return json.dumps({
            'format': _CACHE_FORMAT,
            'open_clip': open_clip.__version__,
            'model_name': self.model_name,
            'model_cfg': self._model_cfg,
            'weights_sha256': self._weights_hash(),
            'templates': list(self.templates),
            'ensemble_normalize': self.ensemble_normalize,
            'strings': [list(self._strings_of(name)) for name in names],
            'subtract_redundant': self.subtract_redundant,
            'redundant_templates': (list(self.redundant_templates)
                                    if self.subtract_redundant else None),
            'normalize': self.normalize,
            'class_names': list(names),
        }, sort_keys=True, ensure_ascii=False)

    def _cache_path(self, key: str) -> str:
        digest = hashlib.sha256(key.encode('utf-8')).hexdigest()
        return osp.join(osp.expanduser(self.cache_dir), f'{digest}.pt')

    def _load_disk_cache(self, names: Tuple[str, ...]) -> Optional[Tensor]:
        key = self._disk_key(names)
        path = self._cache_path(key)
        if not osp.exists(path):
            return None
        try:
            payload = torch.load(path, map_location='cpu', weights_only=True)
            emb = payload['embeddings'] if isinstance(payload, dict) else None
            if not isinstance(payload, dict) or payload.get('key') != key:
                reason = 'key mismatch'
            elif not isinstance(emb, Tensor) or emb.dtype != torch.float32 \
                    or tuple(emb.shape) != (len(names), self.embed_dim):
                reason = 'wrong tensor type or shape'
            elif not torch.isfinite(emb).all():
                reason = 'non-finite values'
            elif self.normalize and (emb.norm(dim=-1) - 1).abs().max() > 1e-4:
                reason = 'rows are not unit-norm'
            else:
                return emb
        except Exception as e:  # truncated/corrupt files raise many types
            reason = f'{type(e).__name__}: {e}'
        warnings.warn(f'Ignoring unreadable text-embedding cache {path!r} ({reason}); '
                      'recomputing it.', UserWarning)
        return None

    def _save_disk_cache(self, names: Tuple[str, ...], emb: Tensor):
        key = self._disk_key(names)
        path = self._cache_path(key)
        try:
            atomic_torch_save({'key': key, 'embeddings': emb.cpu().contiguous()}, path)
        except OSError as e:
            warnings.warn(f'Could not write text-embedding cache {path!r}: {e}', UserWarning)
