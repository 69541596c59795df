"""Loading the released EVF-SAM checkpoints into :class:`EVFSAM`: the one place of EVF-SAM key mapping.

A release (``YxZhang/evf-sam``, ``YxZhang/evf-sam-multitask`` on the Hugging Face hub) is one
``pytorch_model.bin`` (or ``model.safetensors``) holding, in fp16 (method notes §6.2):

======================= =========================================== ==========================
file prefix             contents                                    here
======================= =========================================== ==========================
``visual_model.``       SAM's official keys (``image_encoder.*``,    ``visual_model.`` (the
                        ``prompt_encoder.*``, ``mask_decoder.*``)    neck: ``image_encoder.neck.N``
                                                                    -> ``neck.layers.N``)
``mm_extractor.beit3.`` torchscale's BEiT-3 keys                    ``fusion_encoder.``
``text_hidden_fcs.0.``  Linear(D, D), ReLU, Linear(D, 256)          ``projector.layers.``
======================= =========================================== ==========================

Loading is exact: an unknown key, a key the model lacks, a model key the file lacks (LoRA
tensors excepted) or a shape mismatch raises, naming the first bad key (and both shapes). Each
tensor is cast to the dtype of the parameter it lands in. A file of the other SAM generation
(EVF-SAM2's SAM-2 keys into a SAM-1 visual model) is refused by name before anything loads.
"""
from typing import Dict, Optional

import torch
from torch import nn

from ...utils.download import hub_path, resolve_file

HF_RESOLVE = 'https://huggingface.co/{repo}/resolve/main/{file}'
#: The released files (method notes §6.1). The weights are fp16; the multitask release adds
#: ``[semantic]`` (id 64002) in ``added_tokens.json``.
EVF_SAM_RELEASES = {
    'evf-sam': dict(repo='YxZhang/evf-sam', weights='pytorch_model.bin'),
    'evf-sam-multitask': dict(repo='YxZhang/evf-sam-multitask', weights='pytorch_model.bin',
                              added_tokens='added_tokens.json'),
}
#: sha256 of ``sentencepiece.bpe.model`` in every release (= BEiT-3's ``beit3.spm``).
EVF_SPM_SHA256 = '6f5e2fefcf793761a76a6bfb8ad35489f9c203b25557673284b6d032f41043f4'

VISUAL_PREFIX = 'visual_model.'
BEIT3_PREFIX = 'mm_extractor.beit3.'
PROJECTOR_PREFIX = 'text_hidden_fcs.0.'
_NECK_FILE = 'image_encoder.neck.'
_NECK_OURS = 'neck.layers.'
#: Keys that only a SAM-2 visual model has (EVF-SAM2 releases).
SAM2_MARKERS = ('sam_prompt_encoder.', 'sam_mask_decoder.', 'image_encoder.trunk.', 'no_mem_embed',
                'memory_encoder.', 'memory_attention.', 'maskmem_tpos_enc')


def _error(message: str) -> ValueError:
    """A user error the tools print as one line (:class:`mmsamptx.apis.errors.InputError`)."""
    from ...apis.errors import InputError  # here: the apis package imports the models
    return InputError(message)


def release_url(name: str, file: str = 'weights') -> str:
    """The download URL of a release's file (``'weights'``, ``'sentencepiece.bpe.model'`` ...)."""
    if name not in EVF_SAM_RELEASES:
        raise _error(f'unknown EVF-SAM release {name!r}; valid: {", ".join(EVF_SAM_RELEASES)}')
    info = EVF_SAM_RELEASES[name]
    return HF_RESOLVE.format(repo=info['repo'], file=info.get(file, file))


# Where a release file is kept (per Hugging Face repository): the library's one hub path.
evf_hub_path = hub_path


def read_evf_state_dict(checkpoint: str) -> Dict[str, torch.Tensor]:
    """Read a release's tensors safely: ``safetensors`` for ``*.safetensors``, else
    ``torch.load(weights_only=True)`` (memory-mapped where the file allows)."""
    path = resolve_file(checkpoint, 'EVF-SAM checkpoint')
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            state = load_file(path, device='cpu')
        else:
            try:
                state = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
            except RuntimeError as e:
                if 'mmap' not in str(e):
                    raise
                state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        raise _error(f'could not read EVF-SAM checkpoint {path!r}: {type(e).__name__}: {e}') from e
    if isinstance(state, dict) and isinstance(state.get('state_dict'), dict):
        state = state['state_dict']
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise _error(f'{path!r} is not an EVF-SAM checkpoint (a mapping of names to tensors)')
    return state


def evf_key_to_ours(key: str) -> Optional[str]:
    """Our :class:`EVFSAM` key for a release key, or None for a key of no known part."""
    if key.startswith(VISUAL_PREFIX):
        rest = key[len(VISUAL_PREFIX):]
        if rest.startswith(_NECK_FILE):
            rest = _NECK_OURS + rest[len(_NECK_FILE):]
        return 'visual_model.' + rest
    if key.startswith(BEIT3_PREFIX):
        return 'fusion_encoder.' + key[len(BEIT3_PREFIX):]
    if key.startswith(PROJECTOR_PREFIX):
        return 'projector.layers.' + key[len(PROJECTOR_PREFIX):]
    return None


def our_key_to_evf(key: str) -> str:
    """The release key of one of our keys (the inverse of :func:`evf_key_to_ours`, peft's
    ``base_layer`` dropped); raises for a key outside the three parts."""
    key = key.replace('.base_layer.', '.')
    for ours, theirs in (('visual_model.' + _NECK_OURS, VISUAL_PREFIX + _NECK_FILE),
                         ('visual_model.', VISUAL_PREFIX), ('fusion_encoder.', BEIT3_PREFIX),
                         ('projector.layers.', PROJECTOR_PREFIX)):
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise _error(f'{key!r} is not a key of an EVF-SAM part')


def check_sam_generation(state: Dict[str, torch.Tensor], model: nn.Module, source: str) -> None:
    """Refuse an EVF-SAM2 file (SAM-2 visual keys) for a SAM-1 visual model, and vice versa."""
    own_visual = [k for k in model.visual_model.state_dict()]
    model_is_sam2 = any(k.startswith(SAM2_MARKERS) for k in own_visual)
    file_sam2 = next((k for k in state if k.startswith(VISUAL_PREFIX)
                      and k[len(VISUAL_PREFIX):].startswith(SAM2_MARKERS)), None)
    kind = type(model.visual_model).__name__
    if file_sam2 is not None and not model_is_sam2:
        raise _error(
            f'{source} is an EVF-SAM2 checkpoint (SAM-2 visual keys, e.g. {file_sam2!r}), but this '
            f"model's visual model is {kind} (SAM-1, ViT): load an EVF-SAM release "
            f'({", ".join(EVF_SAM_RELEASES)}) or build the model with a SAM-2 visual model')
    if model_is_sam2 and file_sam2 is None and any(k.startswith(VISUAL_PREFIX) for k in state):
        raise _error(f'{source} is an EVF-SAM (SAM-1) checkpoint, but this model\'s visual model '
                         f'is {kind} (SAM-2)')


def _copy_exact(module: nn.Module, part: Dict[str, torch.Tensor], source: str, what: str,
                evf_name) -> None:
    """Copy ``part`` (our key names) into ``module`` exactly, casting to each target's dtype."""
    own = module.state_dict()
    for key, value in part.items():
        if key not in own:
            raise _error(f'{source}: key {evf_name(key)!r} has no counterpart in {what} '
                             f'({type(module).__name__}); is the file of another model or arch?')
        if own[key].shape != value.shape:
            raise _error(f'{source}: key {evf_name(key)!r} has shape {tuple(value.shape)} in the '
                             f'file but {tuple(own[key].shape)} in {what}; check the arch')
    missing = [k for k in own if k not in part]
    if missing:
        raise _error(f'{source} lacks {len(missing)} key(s) of {what}, first '
                         f'{evf_name(missing[0])!r}')
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in part.items()}, strict=True)


def load_evf_checkpoint(model: nn.Module, checkpoint: str,
                        state: Optional[Dict[str, torch.Tensor]] = None) -> None:
    """Load a released EVF-SAM file into an :class:`EVFSAM` exactly (see the module docstring).

    Args:
        model: the segmentor (``visual_model``, ``fusion_encoder``, ``projector``).
        checkpoint: a path or URL of ``pytorch_model.bin`` / ``model.safetensors``.
        state: the file's tensors, already read (then ``checkpoint`` only names it).
    """
    from ..text_encoders.beit3_checkpoint import load_beit3_weights
    source = str(checkpoint)
    state = read_evf_state_dict(checkpoint) if state is None else state
    check_sam_generation(state, model, source)
    unknown = next((k for k in state if evf_key_to_ours(k) is None), None)
    if unknown is not None:
        raise _error(f'{source}: key {unknown!r} belongs to no EVF-SAM part (expected the '
                         f'prefixes {VISUAL_PREFIX!r}, {BEIT3_PREFIX!r}, {PROJECTOR_PREFIX!r})')
    parts = {'visual_model.': {}, 'fusion_encoder.': {}, 'projector.layers.': {}}
    for key, value in state.items():
        ours = evf_key_to_ours(key)
        for prefix, part in parts.items():
            if ours.startswith(prefix):
                part[ours[len(prefix):]] = value
                break
    for prefix, part in parts.items():
        if not part:
            raise _error(f'{source} has no keys of {prefix.rstrip(".")} (file prefix '
                             f'{our_key_to_evf(prefix + "x")[:-1]!r}); is it an EVF-SAM checkpoint?')
    _copy_exact(model.visual_model, parts['visual_model.'], source, 'visual_model',
                lambda k: our_key_to_evf('visual_model.' + k))
    _copy_exact(model.projector.layers, parts['projector.layers.'], source, 'projector',
                lambda k: PROJECTOR_PREFIX + k)
    try:
        load_beit3_weights(model.fusion_encoder, parts['fusion_encoder.'], source, prefix=BEIT3_PREFIX)
    except ValueError as e:
        raise _error(str(e)) from e
