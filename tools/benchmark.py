"""Benchmark SAM-PTx (this project's fast paths) against a naive segment_anything reference.

One process builds a config's ClassPromptedSAM ("ours", with the fast paths the
options switch on: fused SDPA attention, bf16 autocast of the frozen trunk and
of the mask decoder,
non-reentrant activation checkpointing, shared patch embedding / early blocks,
all (image, class) samples of an image as one batch in training, and in chunks
of at most 2048 tokens at inference) and a naive reference made of
``segment_anything``'s own ``ImageEncoderViT``, ``PromptEncoder`` and
``MaskDecoder`` with the same weights and the same adapters, re-implemented in
this file (SAM-PTx as its authors built it: an adapter on every block's attention
output with an inner skip, a <- a + s(a + A(a)), and a Parallel-Text adapter
beside every block's MLP, the text projected to the token width with GELU and
added to the normalised tokens before the bottleneck), and the head's losses
(focal or BCE, Dice, soft IoU, IoU MSE) written out plainly; fp32, eager,
materialised attention, one encoder pass per (image, class) sample, no
checkpointing. Head text options the reference cannot express
(``text_injection='decoder'``, ``'decoder_cross_attn'``) are refused by name;
``'prompt'`` and ``'prompt_encoder'`` are implemented. Before measuring, it
checks in fp32 that both give the same masks and losses on one input, then
measures them side by side (interleaved) on the same inputs:

  train          training step, images/s (K class samples per image, losses,
                 backward, optimizer step on the trainable parameters)
  train_memory   peak memory of one training step
  infer_image    inference of one image with its K class prompts (N points each), s/image
  infer_prompt   inference of one (image, class, N points) prompt alone, s/prompt
  infer_memory   peak memory of infer_image
  text150        text-only inference over 150 classes: ours with text adapters in
                 the last k blocks only (earlier blocks shared per image) against
                 ours with text in every block (full per-class encoding)
  cache          training epochs of the cached variants (--cache-variants: decoder-only
                 fine-tuning, and PTSAM prompt tuning with the decoder frozen; no
                 adapters, frozen encoder) with the segmentor's image-embedding cache,
                 filled by an earlier epoch, against ours re-encoding every image, and
                 against the naive reference's epoch (segment_anything's encoder in
                 fp32, eager, re-run on each image once per step, then one decoder
                 call per sample, the prompt tokens appended plainly); left out, with
                 a note, where the segmentor has no ``embedding_cache``

``--method clip_guided_sam`` (default config ``configs/clip_guided_sam/cgs_voc_1-16.py``)
measures CLIP-Guided SAM instead: ours is the config's ClassPromptedSAM with its CLIPSurgery
guide (one CLIP image pass per image for all its class samples, each class's text feature t
computed once and cached, the samples as one batch through SAM with the fast paths above; the
guide runs float32 at ``--clip-size``); the reference computes as the authors' code does, per
(image, class) sample: a CLIPSurgery vision forward (open_clip's blocks, then the surgery
blocks' q-k and v-v attentions written out with an explicit softmax), the class name through
CLIP's text tower and the empty prompt through every redundant template, recomputed at every
sample, the similarity, the min-max map, 5 points drawn from it and the 0/255 dense prompt,
then segment_anything's modules with the semantic adapters written plainly; fp32, eager. Its
rows:

  train          training step, images/s (semi-automatic: similarity points, dense prompt)
  train_memory   peak memory of one training step
  text_only      text-only inference of one image over the config's text-mode classes
                 (VOC: 20), s/image: ours' predict (test_cfg.mode='text', class chunks)
                 against one full reference sample per class

``--method evf_sam`` measures EVF-SAM (one model, random weights, a small
sentencepiece model trained on the fly in BEiT-3's id layout) against itself
used the other way:

  multi_expression  E expressions of one image in one call (one SAM image
                    encoding; the expressions through BEiT-3 and the decoder as
                    one padded batch) against one call per expression, the
                    official inference path, s/image; checked first to give
                    the same masks
  train             training step with BEiT-3's activation checkpointing
                    (``with_cp``) on against off, images/s (its price)
  train_memory      peak memory of that training step, checkpointing on against off

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the allocation
before the step; on CPU the growth of the process's peak resident set size
(VmHWM, reset through /proc/self/clear_refs after ``malloc_trim``) above its
resident size just before the step: what the machine must really have, glibc's
heap included. With ``--tensor-memory`` (default) the CPU rows also give
torch.profiler's tensor-allocation peak (the CPU counterpart of
``max_memory_allocated``), measured in another fresh subprocess. Each side is
measured in its own fresh subprocess that holds only its own model, so
neither inherits the other's allocator state; the order alternates.

A ratio above 1 always means ours is better: throughput ours / reference,
time and memory reference / ours. Weights are random (no network); SAM's
zero-initialised tables and the adapters' zero up-projections are filled with
small random values so that adapters and text change the result.

Example (CPU, ViT-B at 512 px)::

    python tools/benchmark.py --arch vit_b --img-size 512 --batch 1 \\
        --classes-per-image 4 --warmup 1 --repeats 2 --json work_dirs/bench.json
    python tools/benchmark.py --method clip_guided_sam --arch vit_b --img-size 512 \\
        --clip-size 256 --classes-per-image 4 --warmup 1 --repeats 2 --json work_dirs/cgs.json
"""
import argparse
import contextlib
import copy
import datetime
import functools
import gc
import json
import os
import os.path as osp
import platform
import re
import statistics
import subprocess
import sys
import time
import zlib

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ALL_ROWS = ('train', 'train_memory', 'infer_image', 'infer_prompt', 'infer_memory', 'text150',
            'cache')
#: units whose larger value is better; every other unit (time, memory) is better smaller
HIGHER_IS_BETTER_UNITS = ('images/s',)
MIB = 1024.0 * 1024.0
#: --infer-class-chunk auto: class samples per inference pass hold at most this many tokens
AUTO_CHUNK_TOKENS = 2048
#: --method: the default config of each method
METHOD_CONFIGS = {'samptx': 'configs/samptx_ade20k_1-64.py',
                  'clip_guided_sam': 'configs/clip_guided_sam/cgs_voc_1-16.py',
                  'evf_sam': 'configs/evf_sam/evf-sam_vit-h_refcoco-mix.py'}
#: the rows of --method clip_guided_sam (see the CLIP-Guided SAM section)
CGS_ROWS = ('train', 'train_memory', 'text_only')
#: the rows of --method evf_sam (see the EVF-SAM section)
EVF_ROWS = ('multi_expression', 'train', 'train_memory')
METHOD_ROWS = {'samptx': ALL_ROWS, 'clip_guided_sam': CGS_ROWS, 'evf_sam': EVF_ROWS}


# --------------------------------------------------------------------------- arguments
def parse_cp_blocks(text):
    """``--with-cp``: 'all' -> True, 'none' -> False, '0,1,3' -> [0, 1, 3], 'auto' (see resolve_cp)."""
    text = text.strip().lower()
    if text == 'auto':
        return 'auto'
    if text in ('all', 'on', 'true'):
        return True
    if text in ('none', 'off', 'false'):
        return False
    try:
        return [int(i) for i in text.split(',') if i.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'all', 'none' or comma-separated block indices, not {text!r}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n', 2)[2])
    parser.add_argument('--method', default='samptx', choices=tuple(METHOD_CONFIGS),
                        help="what is compared: 'samptx' (SAM-PTx against segment_anything, rows "
                             f"{','.join(ALL_ROWS)}) or 'clip_guided_sam' (CLIP-Guided SAM against "
                             "a reference that computes as its authors' code does, rows "
                             f"{','.join(CGS_ROWS)}) or 'evf_sam' (EVF-SAM: several expressions "
                             "per call against one call each, BEiT-3 checkpointing on against "
                             f"off; rows {','.join(EVF_ROWS)})")
    parser.add_argument('--config', default=None,
                        help='model config (its model dict is built; default: the method\'s '
                             'headline, ' + ', '.join(f'{m}: {c}' for m, c in METHOD_CONFIGS.items())
                             + ')')
    parser.add_argument('--clip-size', type=int, default=256,
                        help="clip_guided_sam: side of CLIP's input (the guide's clip_size; the "
                             'paper: 512 for SAM at 1024, so 256 for SAM at 512)')
    parser.add_argument('--clip-model', default=None,
                        help="clip_guided_sam: an open_clip model name instead of the config's "
                             "(e.g. 'mmsamptx-tiny-clip' for smoke tests)")
    parser.add_argument('--arch', default=None,
                        help="override the encoder arch ('vit_b', 'vit_l', 'vit_h', 'tiny')")
    parser.add_argument('--img-size', type=int, default=512, help='input side in pixels')
    parser.add_argument('--batch', type=int, default=1, help='images per training step')
    parser.add_argument('--classes-per-image', type=int, default=4,
                        help='K: (image, class) samples per image, in training and infer_image')
    parser.add_argument('--expressions', type=int, default=4,
                        help='--method evf_sam: referring expressions per image')
    parser.add_argument('--beit3-arch', default=None,
                        help="--method evf_sam: BEiT-3 arch ('large', 'base', 'tiny'; default the "
                             "config's)")
    parser.add_argument('--points', type=int, default=None,
                        help="N: positive points per (image, class) sample, in training and "
                             "inference, on both sides (default: the config's train_cfg.num_points; "
                             'SAM-PTx: 5)')
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda[:i]'")
    parser.add_argument('--dtype', default='auto', choices=('auto', 'float32', 'bfloat16', 'float16'),
                        help="autocast dtype of ours' frozen trunk and mask decoder (whose weights "
                             "and losses stay float32; with float16 the decoder stays float32, "
                             "having no gradient scaler); 'auto': bfloat16 where the device "
                             'runs it natively (CUDA with bf16, CPU with AVX512-BF16/AMX), else float32. '
                             'The reference is always float32.')
    parser.add_argument('--loss-size', default='config', choices=('config', 'input', 'mask'),
                        help="where both sides compute the mask losses (decode_head.loss_size): at "
                             "the input resolution ('input'), or at the decoder's 4h x 4w mask "
                             "resolution with the targets sampled down ('mask'); 'config': the "
                             "config's setting")
    parser.add_argument('--fused-attn', default='auto', choices=('auto', 'on', 'off', 'global'),
                        help="ours: attention through scaled_dot_product_attention with the "
                             "relative-position bias as extra head dims ('on'), SAM's explicit "
                             "softmax ('off'), or SDPA in the global-attention blocks and in windowed ones "
                             "only where no gradient flows ('global'); "
                             "'auto': on for CUDA, global on the CPU (measured: docs/benchmarks.md)")
    parser.add_argument('--with-cp', default='auto', type=parse_cp_blocks,
                        help="ours: non-reentrant activation checkpointing of encoder blocks in "
                             "training: 'all', 'none', comma-separated block indices, or 'auto': all "
                             "on CUDA; on the CPU half of the blocks, windowed ones first (ViT-B: "
                             "0,1,3,4,6,7), the measured trade of time for memory")
    parser.add_argument('--no-with-cp', dest='with_cp', action='store_const', const=False,
                        help="the same as --with-cp none")
    parser.add_argument('--compile', action='store_true',
                        help="ours: torch.compile every encoder block (backbone.compile_blocks); "
                             'compilation happens in the warm-up runs')
    parser.add_argument('--class-batch', action=argparse.BooleanOptionalAction, default=True,
                        help="ours: an image's class samples run as one batch (else one at a time)")
    parser.add_argument('--infer-class-chunk', default='auto',
                        help="ours, infer_image/infer_memory: class samples per encoder pass at "
                             "inference (the model's test_cfg.class_chunk, as its predict uses it); "
                             "'auto': as many as make at most %d tokens (ViT at 512²: 2; 1024²: 1; "
                             "256²: 8), which bounds the activations held at once" % AUTO_CHUNK_TOKENS)
    parser.add_argument('--repeats', type=int, default=2, help='measured repeats of each side')
    parser.add_argument('--warmup', type=int, default=1, help='unmeasured runs of each side first')
    parser.add_argument('--rows', default=None,
                        help=f'comma-separated rows to measure (default: all of the method\'s), '
                             f'samptx: {",".join(ALL_ROWS)}; clip_guided_sam: {",".join(CGS_ROWS)}')
    parser.add_argument('--text-classes', type=int, default=150,
                        help='text150: vocabulary size (the config\'s classes if it has as many); '
                             "text_only (clip_guided_sam): at most this many of the config's "
                             'text-mode classes (VOC: the 20 object classes)')
    parser.add_argument('--text-img-size', type=int, default=None,
                        help='text150: input side (default: --img-size)')
    parser.add_argument('--shared-k', type=int, default=4,
                        help='text150: text adapters in the last k blocks (at most depth - 1)')
    parser.add_argument('--class-chunk', type=int, default=None,
                        help="text150: classes per forward (default: the config's test_cfg.class_chunk)")
    parser.add_argument('--cache-variants', default='decoder,prompt',
                        help="cache: which trainable part, comma-separated: 'decoder' (decoder-only "
                             "fine-tuning) and/or 'prompt' (PTSAM prompt tuning: 8 decoder prompt "
                             'tokens, the decoder frozen)')
    parser.add_argument('--cache-steps', type=int, default=2,
                        help='cache: training steps (of --batch images) per cached epoch')
    parser.add_argument('--tensor-memory', action=argparse.BooleanOptionalAction, default=True,
                        help='CPU: also measure the torch.profiler tensor-allocation peak of each side '
                             '(one more fresh subprocess per side)')
    parser.add_argument('--memory-repeats', type=int, default=1,
                        help='fresh subprocesses per side for each memory row (median reported)')
    parser.add_argument('--memory-isolation', default='subprocess', choices=('subprocess', 'inline'),
                        help="memory rows: each side in a fresh subprocess (default), or 'inline': "
                             'in this process, one side after the other (quicker, but each side '
                             'inherits the allocator state of all that ran before; for smoke tests)')
    parser.add_argument('--check-tol', type=float, default=1e-3,
                        help='equivalence check: largest |mask logit difference| / largest |logit|')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s)')
    parser.add_argument('--json', default=None, help='write the results here')
    parser.add_argument('--plot', default=None, help='write a PNG bar chart of the ratios here')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)  # "<row>:<ours|ref>"
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.config is None:
        args.config = osp.join(REPO, METHOD_CONFIGS[args.method])
    method_rows = METHOD_ROWS[args.method]
    if args.rows is None:
        args.rows = ','.join(method_rows)
    rows = [r.strip() for r in args.rows.split(',') if r.strip()]
    bad = [r for r in rows if r not in method_rows]
    if bad or not rows:
        parser.error(f'--rows: unknown {bad} for --method {args.method}; choose from '
                     f'{",".join(method_rows)}')
    args.rows = rows
    variants = [v.strip() for v in args.cache_variants.split(',') if v.strip()]
    if not variants or any(v not in CACHE_VARIANTS for v in variants):
        parser.error(f'--cache-variants: choose from {",".join(CACHE_VARIANTS)}, got {args.cache_variants!r}')
    args.cache_variants = variants
    for name in ('img_size', 'batch', 'classes_per_image', 'repeats', 'text_classes', 'shared_k',
                 'memory_repeats', 'cache_steps', 'clip_size', 'expressions'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1')
    if args.warmup < 0:
        parser.error('--warmup must be >= 0')
    if args.img_size % 16:
        parser.error('--img-size must be a multiple of the 16 px patch')
    if args.infer_class_chunk == 'auto':
        args.infer_class_chunk = max(1, AUTO_CHUNK_TOKENS // (args.img_size // 16) ** 2)
    else:
        try:
            args.infer_class_chunk = int(args.infer_class_chunk)
        except ValueError:
            parser.error(f"--infer-class-chunk: 'auto' or a positive integer, not "
                         f'{args.infer_class_chunk!r}')
        if args.infer_class_chunk < 1:
            parser.error('--infer-class-chunk must be at least 1')
    return args


# ------------------------------------------------------------------------------- device
def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def resolve_fused(args, device):
    """Ours' ``backbone.fused_attn`` (see ``--fused-attn``)."""
    choice = args.fused_attn
    if choice == 'auto':
        choice = 'on' if device.type == 'cuda' else 'global'
    return {'on': True, 'off': False, 'global': 'global'}[choice]


def resolve_cp(args, device, arch):
    """Ours' ``backbone.with_cp`` (see ``--with-cp``)."""
    if args.with_cp != 'auto':
        return args.with_cp
    if device.type == 'cuda':
        return True
    from mmsamptx.models.backbones.sam_image_encoder import resolve_arch
    numbers = resolve_arch(arch)
    depth, global_blocks = numbers['depth'], set(numbers['global_attn_indexes'])
    order = [i for i in range(depth) if i not in global_blocks] + sorted(global_blocks)
    return sorted(order[:depth // 2])


def resolve_dtype(args, device):
    """The autocast dtype name of ours' trunk (None = float32), by the encoder's own rule."""
    from mmsamptx.models.utils.precision import resolve_autocast_dtype
    dtype = resolve_autocast_dtype(None if args.dtype == 'float32' else args.dtype, device.type)
    return None if dtype is None else str(dtype).replace('torch.', '')


def describe_device(device) -> str:
    from mmsamptx.models.utils.precision import bf16_is_native
    if device.type == 'cuda':
        return f'{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})'
    name = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            name = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return (f'CPU: {name}, {os.cpu_count()} logical cores, torch {torch.__version__} with '
            f'{torch.get_num_threads()} threads, capability {torch.backends.cpu.get_cpu_capability()}'
            f', native bf16: {bf16_is_native(device.type)}')


def load_average():
    try:
        return [float(v) for v in open('/proc/loadavg').read().split()[:3]]
    except OSError:
        return None


# -------------------------------------------------------------------------------- ours
class FixedTextEncoder(nn.Module):
    """Stands in for the CLIP text tower: a fixed unit vector per class name (no weights to load).

    Class embeddings are computed once per model and are not what is measured.
    """

    def __init__(self, embed_dim: int, seed: int = 0) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.seed = seed

    def encode(self, class_names):
        rows = []
        for name in class_names:
            g = torch.Generator().manual_seed(zlib.crc32(f'{self.seed}:{name}'.encode()))
            rows.append(torch.randn(self.embed_dim, generator=g))
        return F.normalize(torch.stack(rows), dim=-1)


def fill_zero_inits(model: nn.Module, seed: int, std: float = 0.02) -> None:
    """Give SAM's zero-initialised position tables, zero biases and the adapters' zero
    up-projections small random values, so the equivalence check means something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'pos_embed' in name or 'rel_pos' in name or not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * std)


def load_config(args):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmsamptx  # noqa: F401  (registers the components)
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    model = cfg.model
    if model.get('type') != 'ClassPromptedSAM':
        raise SystemExit(f'{args.config}: the benchmark needs a ClassPromptedSAM model, '
                         f'got {model.get("type")!r}')
    if args.method == 'clip_guided_sam':
        configure_cgs(cfg, args)
    elif model.get('guide') is not None:
        raise SystemExit(f'{args.config}: a CLIP-Guided SAM model (model.guide); measure it with '
                         '--method clip_guided_sam')
    if args.arch is not None:
        from mmsamptx.models.backbones.sam_image_encoder import resolve_arch
        model.backbone.arch = args.arch
        model.neck.in_channels = resolve_arch(args.arch)['embed_dims']
    # What the reference mirrors: K present classes per image, N positive points each.
    if args.points is None:
        args.points = int((model.get('train_cfg') or {}).get('num_points', 1))
    if args.points < 1:
        raise SystemExit(f'--points must be at least 1, got {args.points}')
    model.train_cfg = dict(model.get('train_cfg') or {}, classes_per_image=args.classes_per_image,
                           num_points=args.points, negatives_per_image=0)
    return cfg


def decoder_dtype(args):
    """The mask decoder's autocast: the trunk's, except float16, which would train the decoder
    without a gradient scaler (the head refuses it): float32 then."""
    return args.autocast_dtype if args.autocast_dtype == 'bfloat16' else None


def build_ours(cfg, args, device, img_size, adapter_blocks='config', class_names=None,
               test_mode=None, fast=True, head_overrides=None, **model_overrides):
    """The config's ClassPromptedSAM at ``img_size`` with random weights and the fast paths.

    ``adapter_blocks``: ``'config'`` keeps the config's adapters, ``'none'`` removes them
    (decoder-only), else the blocks that get the config's adapter (None: all).
    ``head_overrides`` update the config's ``decode_head``.
    """
    from mmseg.registry import MODELS
    mcfg = copy.deepcopy(cfg.model)
    mcfg.update(model_overrides)
    mcfg.decode_head.update(head_overrides or {})
    mcfg.data_preprocessor = None  # inputs are given already normalised
    bb = mcfg.backbone
    bb.img_size = img_size
    bb.checkpoint = None
    bb.init_cfg = None
    bb.fused_attn = args.fused if fast else False
    bb.with_cp = args.with_cp if fast else False
    bb.autocast_dtype = args.autocast_dtype if fast else None
    bb.compile_blocks = bool(args.compile) if fast else False
    mcfg.decode_head.autocast_dtype = decoder_dtype(args) if fast else None
    if args.loss_size != 'config':
        mcfg.decode_head.loss_size = args.loss_size
    if adapter_blocks == 'none':
        bb.adapter_cfg = None
        bb.attn_adapter_cfg = None
    elif adapter_blocks != 'config':
        if bb.get('adapter_cfg') is None:
            raise ValueError('the config has no adapters to place')
        bb.adapter_cfg = dict(bb.adapter_cfg, blocks=adapter_blocks)
    mcfg.neck.checkpoint = None
    mcfg.neck.init_cfg = None
    mcfg.decode_head.image_size = img_size
    mcfg.decode_head.checkpoint = None
    mcfg.decode_head.init_cfg = None
    if class_names is not None:
        mcfg.class_names = list(class_names)
    if test_mode is not None:
        mcfg.test_cfg = dict(mcfg.get('test_cfg') or {}, mode=test_mode)
        if args.class_chunk is not None:
            mcfg.test_cfg['class_chunk'] = args.class_chunk
    torch.manual_seed(args.seed)
    model = MODELS.build(mcfg)
    if model.text_encoder is not None:
        model.text_encoder = FixedTextEncoder(model.text_encoder.embed_dim, args.seed)
    fill_zero_inits(model, args.seed)
    return model.to(device)


# --------------------------------------------------------------------------- reference
#: decode_head.text_injection values the naive reference implements (None: no text in the head)
NAIVE_TEXT_INJECTIONS = (None, 'prompt', 'prompt_encoder')


class NaiveAdapter(nn.Module):
    """A plain re-implementation of the adapters: scale * ([h +] up(gelu(z))), with
    z = down(h) [+ text_proj(t)] (text_input 'bottleneck') or down(h + gelu(text_proj(t))) ('tokens')."""

    def __init__(self, embed_dims, bottleneck, scale, text_dims=None, text_input='bottleneck',
                 inner_skip=False):
        super().__init__()
        self.down = nn.Linear(embed_dims, bottleneck)
        self.up = nn.Linear(bottleneck, embed_dims)
        self.text_input = text_input
        self.text_proj = None
        if text_dims:
            self.text_proj = nn.Linear(text_dims, embed_dims if text_input == 'tokens' else bottleneck)
        self.scale = scale
        self.inner_skip = inner_skip

    def forward(self, h, text):
        if self.text_proj is None:
            z = self.down(h)
        elif self.text_input == 'tokens':
            z = self.down(h + F.gelu(self.text_proj(text))[:, None, None, :])
        else:
            z = self.down(h) + self.text_proj(text)[:, None, None, :]
        out = self.up(F.gelu(z))
        return self.scale * (h + out if self.inner_skip else out)


class AttnWithAdapter(nn.Module):
    """segment_anything's block attention with an (unconditioned) adapter on its output: a + adapter(a)."""

    def __init__(self, attn, adapter):
        super().__init__()
        self.attn = attn
        self.adapter = adapter

    def forward(self, x):
        a = self.attn(x)
        return a + self.adapter(a, None)


class MLPWithAdapter(nn.Module):
    """segment_anything's block MLP with an adapter branch beside it.

    The text of the sample being encoded comes through module state
    (``self.text``), as naive reference code would thread it.
    """

    def __init__(self, mlp, adapter):
        super().__init__()
        self.mlp = mlp
        self.adapter = adapter
        self.text = None

    def forward(self, x):
        return self.mlp(x) + self.adapter(x, self.text)


class NaiveReference(nn.Module):
    """segment_anything's ImageEncoderViT (with neck), PromptEncoder and MaskDecoder, fp32, eager,
    one encoder pass and one decoder call per (image, class) sample."""

    def __init__(self, image_encoder, prompt_encoder, mask_decoder, text_proj, multimask,
                 mask_loss, loss_weights, loss_size='input', prompt_tokens=None, dice_eps=1.0,
                 text_prompt_token=None):
        super().__init__()
        self.prompt_tokens = prompt_tokens  # NaivePromptTokens or None
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.text_proj = text_proj  # text_injection='prompt': one projected sparse token
        self.text_prompt_token = text_prompt_token  # 'prompt_encoder': NaiveTextPromptToken
        self.multimask = multimask
        self.mask_loss = mask_loss
        self.loss_weights = dict(loss_weights)
        self.loss_size = loss_size
        self.dice_eps = dice_eps

    def set_text(self, text):
        for m in self.image_encoder.modules():
            if isinstance(m, MLPWithAdapter):
                m.text = text

    def forward_sample(self, image, text, points):
        """image (1, 3, S, S), text (1, D) or None, points (1, N, 2) or None -> logits, iou."""
        self.set_text(text)
        return self.decode(self.image_encoder(image), text, points)

    def decode(self, emb, text, points, masks=None):
        """emb (1, 256, s, s) of one image, masks (1, 1, 4s, 4s) or None -> the sample's logits, iou."""
        pts = None if points is None else (points, torch.ones(points.shape[:2], dtype=torch.long,
                                                              device=points.device))
        sparse, dense = self.prompt_encoder(points=pts, boxes=None, masks=masks)
        if self.text_proj is not None:
            sparse = torch.cat([sparse, self.text_proj(text)[:, None, :]], dim=1)
        if self.text_prompt_token is not None:
            sparse = torch.cat([sparse, self.text_prompt_token(text, sparse.shape[0])], dim=1)
        if self.prompt_tokens is not None:
            sparse = torch.cat([sparse, self.prompt_tokens.tokens.expand(sparse.shape[0], -1, -1)],
                               dim=1)
        return self.mask_decoder(image_embeddings=emb, image_pe=self.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse,
                                 dense_prompt_embeddings=dense, multimask_output=self.multimask)

    def loss(self, logits, iou_pred, targets, ignore_index=255):
        """Focal or BCE + Dice (+ soft IoU) + IoU-MSE losses, written out plainly: SAM's
        20:1:1, or the SAM-PTx authors' BCE + Dice + soft IoU (loss_weights)."""
        from torchvision.ops import sigmoid_focal_loss
        b, m = logits.shape[:2]
        w = self.loss_weights
        if self.loss_size == 'mask':  # targets sampled at the logits' pixel centres
            targets = F.interpolate(targets[:, None].float(), size=logits.shape[-2:],
                                    mode='nearest-exact')[:, 0].long()
        else:
            logits = F.interpolate(logits, size=targets.shape[-2:], mode='bilinear',
                                   align_corners=False)
        valid = (targets != ignore_index).float()[:, None].expand_as(logits)
        target = (targets == 1).float()[:, None].expand_as(logits)
        if self.mask_loss == 'focal':
            pix = sigmoid_focal_loss(logits, target, alpha=0.25, gamma=2.0, reduction='none')
        else:
            pix = F.binary_cross_entropy_with_logits(logits, target, reduction='none')
        mask_l = (pix * valid).flatten(2).sum(-1) / valid.flatten(2).sum(-1).clamp(min=1.0)
        prob = (logits.sigmoid() * valid).flatten(2)
        tgt = (target * valid).flatten(2)
        inter = (prob * tgt).sum(-1)
        dice_l = 1 - (2 * inter + self.dice_eps) / (prob.sum(-1) + tgt.sum(-1) + self.dice_eps)
        soft_iou_l = 1 - (inter + 1e-6) / (prob.sum(-1) + tgt.sum(-1) - inter + 1e-6)
        total = w['mask'] * mask_l + w['dice'] * dice_l
        if w.get('soft_iou', 0):
            total = total + w['soft_iou'] * soft_iou_l
        best = total.argmin(dim=1) if m > 1 else torch.zeros(b, dtype=torch.long, device=logits.device)
        rows = torch.arange(b, device=logits.device)
        losses = dict(loss_mask=w['mask'] * mask_l[rows, best].mean(),
                      loss_dice=w['dice'] * dice_l[rows, best].mean())
        if w.get('soft_iou', 0):
            losses['loss_soft_iou'] = w['soft_iou'] * soft_iou_l[rows, best].mean()
        if not w['iou']:
            losses['loss_iou'] = 0 * iou_pred.sum()
            return losses
        with torch.no_grad():
            hard = (logits[rows, best] > 0).float() * valid[rows, best]
            t = target[rows, best] * valid[rows, best]
            inter = (hard * t).flatten(1).sum(-1)
            union = (hard + t).clamp(max=1).flatten(1).sum(-1)
            true_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
        losses['loss_iou'] = w['iou'] * F.mse_loss(iou_pred[rows, best], true_iou)
        return losses


class NaiveTextPromptToken(nn.Module):
    """text_injection='prompt_encoder', plainly: proj(t) + type, or the no-text token."""

    def __init__(self, text_dims, embed_dims):
        super().__init__()
        self.proj = nn.Linear(text_dims, embed_dims, bias=False)
        self.type_embed = nn.Embedding(1, embed_dims)
        self.no_text_embed = nn.Embedding(1, embed_dims)

    def forward(self, text, batch):
        if text is None:
            return self.no_text_embed.weight[None].expand(batch, -1, -1)
        return (self.proj(text) + self.type_embed.weight)[:, None, :]


class NaivePromptTokens(nn.Module):
    """PTSAM's learnable decoder prompt tokens, plainly: (P, C) appended to the sparse prompts."""

    def __init__(self, num_tokens, embed_dims):
        super().__init__()
        self.tokens = nn.Parameter(torch.zeros(num_tokens, embed_dims))


def _ours_name(ref_name: str) -> str:
    """The parameter of ours that a reference parameter copies."""
    if ref_name.startswith('image_encoder.neck.'):
        return 'neck.layers.' + ref_name[len('image_encoder.neck.'):]
    if ref_name.startswith('image_encoder.'):
        rest = ref_name[len('image_encoder.'):]
        rest = re.sub(r'^blocks\.(\d+)\.mlp\.adapter\.', r'blocks.\1.adapter.', rest)
        rest = re.sub(r'^blocks\.(\d+)\.mlp\.mlp\.', r'blocks.\1.mlp.', rest)
        rest = re.sub(r'^blocks\.(\d+)\.attn\.adapter\.', r'blocks.\1.attn_adapter.', rest)
        rest = re.sub(r'^blocks\.(\d+)\.attn\.attn\.', r'blocks.\1.attn.', rest)
        return 'backbone.' + rest
    return 'decode_head.' + ref_name


def build_reference(ours) -> NaiveReference:
    """segment_anything's modules with ours' weights (and adapters) copied in, fp32."""
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder,
                                           TwoWayTransformer)

    from mmsamptx.models.adapters import (AttentionAdapter, ParallelAdapter, ParallelTextAdapter,
                                          SemanticAdapter)
    bb, head = ours.backbone, ours.decode_head
    blocks = bb.blocks
    if bb.out_indices != [bb.depth - 1]:
        raise ValueError('the reference reads the last block only (backbone.out_indices=(-1,))')
    if getattr(bb, 'prompt_tokens', None) is not None:
        raise ValueError('the naive reference has no encoder prompt tokens (PTSAM decoder+encoder)')
    if head.text_injection not in NAIVE_TEXT_INJECTIONS:
        raise ValueError(f'decode_head.text_injection={head.text_injection!r} has no naive '
                         f"reference (segment_anything's MaskDecoder has no extra output token "
                         f'and no text cross-attention); the reference implements '
                         f'{NAIVE_TEXT_INJECTIONS}')
    attn = blocks[0].attn
    encoder = ImageEncoderViT(
        img_size=bb.img_size, patch_size=bb.patch_size, in_chans=bb.in_channels,
        embed_dim=bb.embed_dims, depth=bb.depth, num_heads=attn.num_heads,
        mlp_ratio=blocks[0].mlp.lin1.out_features / bb.embed_dims,
        out_chans=ours.neck.layers[0].out_channels, qkv_bias=attn.qkv.bias is not None,
        norm_layer=functools.partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU,
        use_abs_pos=True, use_rel_pos=attn.use_rel_pos,
        window_size=next((b.window_size for b in blocks if b.window_size > 0), 0),
        global_attn_indexes=tuple(i for i, b in enumerate(blocks) if b.window_size == 0))
    for i, blk in enumerate(blocks):
        ad = blk.attn_adapter
        if ad is not None:
            if type(ad) is not AttentionAdapter or not isinstance(ad.act, nn.GELU):
                raise ValueError(f'block {i}: no naive reference for attention adapter '
                                 f'{type(ad).__name__}')
            naive = NaiveAdapter(bb.embed_dims, ad.down.out_features, ad.scale,
                                 inner_skip=ad.inner_skip)
            encoder.blocks[i].attn = AttnWithAdapter(encoder.blocks[i].attn, naive)
        ad = blk.adapter
        if ad is None:
            continue
        if type(ad) is SemanticAdapter and isinstance(ad.act, nn.GELU):  # CLIP-Guided SAM
            naive = NaiveSemanticAdapter(bb.embed_dims, ad.down.out_features, ad.scale, ad.text_dims,
                                         ad.vision_dims, ad.use_text, ad.use_vision, ad.use_similarity)
            encoder.blocks[i].mlp = MLPWithAdapter(encoder.blocks[i].mlp, naive)
            continue
        if type(ad) not in (ParallelAdapter, ParallelTextAdapter) or not isinstance(ad.act, nn.GELU):
            raise ValueError(f'block {i}: no naive reference for adapter {type(ad).__name__}')
        naive = NaiveAdapter(bb.embed_dims, ad.down.out_features, ad.scale,
                             getattr(ad, 'text_dims', None), getattr(ad, 'text_input', 'bottleneck'))
        encoder.blocks[i].mlp = MLPWithAdapter(encoder.blocks[i].mlp, naive)
    pe = head.prompt_encoder
    prompt_encoder = PromptEncoder(
        embed_dim=pe.embed_dim, image_embedding_size=tuple(pe.image_embedding_size),
        input_image_size=tuple(pe.input_image_size),
        mask_in_chans=pe.mask_downscaling[3].out_channels)
    md = head.mask_decoder
    mask_decoder = MaskDecoder(
        transformer_dim=md.transformer_dim,
        transformer=TwoWayTransformer(depth=len(md.transformer.layers),
                                      embedding_dim=md.transformer.embedding_dim,
                                      mlp_dim=md.transformer.layers[0].mlp.lin1.out_features,
                                      num_heads=md.transformer.num_heads),
        num_multimask_outputs=md.num_multimask_outputs,
        iou_head_depth=md.iou_prediction_head.num_layers,
        iou_head_hidden_dim=md.iou_prediction_head.layers[0].out_features)
    text_proj = None
    if head.text_proj is not None:
        text_proj = nn.Linear(head.text_proj.in_features, head.text_proj.out_features)
    text_token = None
    if head.text_injection == 'prompt_encoder':
        text_token = NaiveTextPromptToken(*head.text_prompt_token.proj.weight.shape[::-1])
    tokens = None
    if getattr(head, 'has_prompt_tokens', False):
        tokens = NaivePromptTokens(*head.prompt_tokens.tokens.shape)
    ref = NaiveReference(encoder, prompt_encoder, mask_decoder, text_proj, head.multimask_output,
                         head.mask_loss, head.loss_weights, getattr(head, 'loss_size', 'input'),
                         tokens, head.loss_dice.eps, text_token)
    own = dict(ours.named_parameters())
    own.update(ours.named_buffers())
    used = set()
    with torch.no_grad():
        for name, t in list(ref.named_parameters()) + list(ref.named_buffers()):
            src = own.get(_ours_name(name))
            if src is None or src.shape != t.shape:
                raise ValueError(f'reference {name}: no counterpart {_ours_name(name)!r} of the '
                                 f'same shape in ours')
            t.copy_(src.detach().float().cpu())
            if isinstance(t, nn.Parameter):
                t.requires_grad = src.requires_grad
            used.add(_ours_name(name))
    missed = [k for k in own if k.startswith(('backbone.', 'neck.', 'decode_head.')) and k not in used]
    if missed:
        raise ValueError(f'ours has {len(missed)} parameter(s) the reference lacks, first {missed[0]!r}')
    return ref.to(next(ours.parameters()).device)


# ------------------------------------------------------------------------------ inputs
def make_inputs(args, device, img_size, num_classes, batch=None):
    """Images, ground truths with exactly K classes each (vertical stripes, an ignored top band),
    and N = ``args.points`` positive points per class inside its stripe."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    batch = batch or args.batch
    k = args.classes_per_image
    if k > num_classes:
        raise SystemExit(f'--classes-per-image {k} exceeds the model\'s {num_classes} classes')
    if k > img_size:
        raise SystemExit('--classes-per-image exceeds the image width')
    g = torch.Generator().manual_seed(args.seed + 1)
    images = torch.randn(batch, 3, img_size, img_size, generator=g)
    samples, classes, points = [], [], []
    edges = torch.linspace(0, img_size, k + 1).long().tolist()
    for b in range(batch):
        cls = torch.randperm(num_classes, generator=g)[:k].tolist()
        gt = torch.empty(img_size, img_size, dtype=torch.long)
        pts = []
        band = max(1, img_size // 16)
        for j, c in enumerate(cls):
            gt[:, edges[j]:edges[j + 1]] = c
            xs = torch.randint(edges[j], edges[j + 1], (args.points,), generator=g)
            ys = torch.randint(band, img_size, (args.points,), generator=g)
            pts.append(torch.stack([xs, ys], -1).float())
        gt[:band] = 255  # an ignored band: exercises ignore_index
        ds = SegDataSample(metainfo=dict(ori_shape=(img_size, img_size), img_shape=(img_size, img_size),
                                         img_path=f'bench_{b}.png'))
        ds.gt_sem_seg = PixelData(data=gt[None].to(device))
        samples.append(ds)
        classes.append(torch.tensor(cls))
        points.append(torch.stack(pts))  # (K, N, 2): N positive points per class
    return images.to(device), samples, classes, points


def naive_training_samples(samples, k, generator, ignore_index=255, num_points=1,
                           background='ignore'):
    """The reference's own (image, class, points) draw, written plainly: N points drawn with
    replacement from the class's pixels; ``background='negative'``: ignored pixels count as 0."""
    picks = []
    for b, ds in enumerate(samples):
        gt = ds.gt_sem_seg.data[0]
        present = [c for c in gt.unique().tolist() if c != ignore_index]
        order = torch.randperm(len(present), generator=generator)[:k].tolist()
        for i in order:
            c = present[i]
            ys, xs = torch.nonzero(gt == c, as_tuple=True)
            j = torch.randint(ys.numel(), (num_points,), generator=generator).to(ys.device)
            target = (gt == c).long()
            if background == 'ignore':
                target[gt == ignore_index] = ignore_index
            pts = torch.stack([xs[j], ys[j]], -1).float()[None]  # (1, N, 2)
            picks.append((b, c, pts, target))
    return picks


# ---------------------------------------------------------------------- the two sides
def ours_encode_decode(model, images, b, cls, pts, text_embeds, class_batch=True, chunk=None):
    """Ours' mask logits and IoUs of image b's class samples (cls, pts (M, N, 2)), in encoder
    passes of ``chunk`` samples (all at once by default; one at a time without class_batch)."""
    chunk = len(cls) if chunk is None else chunk
    if not class_batch:
        chunk = 1
    if chunk < len(cls):
        outs = [ours_encode_decode(model, images, b, cls[i:i + chunk], pts[i:i + chunk],
                                   text_embeds) for i in range(0, len(cls), chunk)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    text = text_embeds[cls] if text_embeds is not None else None
    img_index = torch.zeros(len(cls), dtype=torch.long, device=images.device)
    emb = model.encode_samples(images[b:b + 1], img_index, text)
    return model.decode_head(emb, pts, None, None, text)


def ref_encode_decode(ref, images, b, cls, pts, text_embeds):
    outs = [ref.forward_sample(images[b:b + 1],
                               text_embeds[c:c + 1] if text_embeds is not None else None, pts[i:i + 1])
            for i, c in enumerate(cls.tolist())]
    return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])


def select_and_resize(logits, iou, size):
    """SAM's returned mask (highest predicted IoU) at the input size."""
    best = iou.argmax(dim=1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    return F.interpolate(logits[rows, best][:, None], size=size, mode='bilinear',
                         align_corners=False)[:, 0], iou[rows, best]


class Sides:
    """Ours and the reference on shared inputs, with their step and inference callables."""

    def __init__(self, args, cfg, device, which=('ours', 'ref')):
        self.args, self.device = args, device
        ours = build_ours(cfg, args, device, args.img_size)
        ours.test_cfg['class_chunk'] = args.infer_class_chunk
        self.class_names = ours.class_names
        self.embeds = ours.class_embeddings()
        self.background = ours.train_cfg['background']
        self.ref = build_reference(ours) if 'ref' in which else None
        self.ours = ours if 'ours' in which else None
        if 'ours' not in which:
            del ours
        self.images, self.samples, self.classes, self.points = make_inputs(
            args, device, args.img_size, len(self.class_names))
        self.ref_embeds = None if self.embeds is None else self.embeds.float().clone()
        self.ref_rng = torch.Generator().manual_seed(args.seed + 2)
        self.opt = {}

    def _optimizer(self, side, model):
        if side not in self.opt:
            params = [p for p in model.parameters() if p.requires_grad]
            self.opt[side] = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
        return self.opt[side]

    def naive_picks(self):
        """The reference's (image, class, points, target) draw over the shared inputs."""
        return naive_training_samples(self.samples, self.args.classes_per_image, self.ref_rng,
                                      num_points=self.args.points, background=self.background)

    # training ------------------------------------------------------------------------
    def ours_train_step(self):
        model = self.ours
        model.train()
        opt = self._optimizer('ours', model)
        losses = model.loss(self.images, self.samples) if self.args.class_batch else \
            self._ours_loss_one_by_one()
        sum(losses.values()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def _ours_loss_one_by_one(self):
        """--no-class-batch: ours' losses over the same samples, one encoder pass each."""
        model = self.ours
        picks = self.naive_picks()
        out = [ours_encode_decode(model, self.images, b, torch.tensor([c], device=self.device), p,
                                  self.embeds) for b, c, p, _ in picks]
        return model.decode_head.loss(torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out]),
                                      torch.stack([t for *_, t in picks]), model.ignore_index)

    def ref_train_step(self):
        ref = self.ref
        ref.train()
        opt = self._optimizer('ref', ref)
        picks = self.naive_picks()
        logits, ious = [], []
        for b, c, pts, _ in picks:
            text = self.ref_embeds[c:c + 1] if self.ref_embeds is not None else None
            lg, io = ref.forward_sample(self.images[b:b + 1], text, pts)
            logits.append(lg)
            ious.append(io)
        losses = ref.loss(torch.cat(logits), torch.cat(ious), torch.stack([t for *_, t in picks]))
        sum(losses.values()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    # inference -----------------------------------------------------------------------
    def _prompts(self, b, single):
        cls, pts = self.classes[b].to(self.device), self.points[b].to(self.device)
        return (cls[:1], pts[:1]) if single else (cls, pts)

    @torch.no_grad()
    def ours_infer(self, single=False):
        self.ours.eval()
        size = self.images.shape[-2:]
        nb = 1 if single else self.images.shape[0]
        # the model's own inference chunking (test_cfg.class_chunk, --infer-class-chunk)
        chunk = self.ours.test_cfg['class_chunk']
        return [select_and_resize(*ours_encode_decode(self.ours, self.images, b,
                                                      *self._prompts(b, single), self.embeds,
                                                      self.args.class_batch, chunk), size)
                for b in range(nb)]

    @torch.no_grad()
    def ref_infer(self, single=False):
        self.ref.eval()
        size = self.images.shape[-2:]
        nb = 1 if single else self.images.shape[0]
        return [select_and_resize(*ref_encode_decode(self.ref, self.images, b,
                                                     *self._prompts(b, single), self.ref_embeds),
                                  size)
                for b in range(nb)]


# ------------------------------------------------------------------------ equivalence
@contextlib.contextmanager
def fp32_trunk(model):
    """Ours with its fast paths but the trunk and the mask decoder in float32 (autocast off)."""
    parts = (model.backbone, model.decode_head)
    saved = [m.autocast_dtype for m in parts]
    for m in parts:
        m.autocast_dtype = None
    try:
        yield
    finally:
        for m, dtype in zip(parts, saved):
            m.autocast_dtype = dtype


def check_equivalence(sides, args):
    """Assert in fp32 that ours and the reference give the same masks and losses on one input."""
    ours, ref, dev = sides.ours, sides.ref, sides.device
    m = min(2, args.classes_per_image)
    cls, pts = sides.classes[0][:m].to(dev), sides.points[0][:m].to(dev)
    ours.eval()
    ref.eval()
    with torch.no_grad():
        with fp32_trunk(ours):
            o_logits, o_iou = ours_encode_decode(ours, sides.images, 0, cls, pts, sides.embeds)
        r_logits, r_iou = ref_encode_decode(ref, sides.images, 0, cls, pts, sides.ref_embeds)
        scale = r_logits.abs().max().item()
        diff = (o_logits.float() - r_logits).abs().max().item()
        iou_diff = (o_iou.float() - r_iou).abs().max().item()
        agree = ((o_logits > 0) == (r_logits > 0)).float().mean().item()
        gt = sides.samples[0].gt_sem_seg.data[0]
        ignored = 255 if sides.background == 'ignore' else 0  # 'negative': ignored pixels are 0
        targets = torch.stack([((gt == c).long().masked_fill(gt == 255, ignored))
                               for c in cls.tolist()])
        o_loss = ours.decode_head.loss(o_logits, o_iou, targets, ours.ignore_index)
        r_loss = ref.loss(r_logits, r_iou, targets)
        if set(o_loss) != set(r_loss):
            raise AssertionError(f'ours and the reference compute different loss terms: '
                                 f'{sorted(o_loss)} against {sorted(r_loss)}')
        loss_diff = max(abs(o_loss[k].item() - r_loss[k].item()) / max(abs(r_loss[k].item()), 1e-6)
                        for k in r_loss)
        fast = {}
        if args.autocast_dtype is not None:
            b_logits, _ = ours_encode_decode(ours, sides.images, 0, cls, pts, sides.embeds)
            fast = dict(fast_dtype=args.autocast_dtype,
                        fast_rel_logit_diff=(b_logits.float() - r_logits).abs().max().item() / scale,
                        fast_mask_agreement=((b_logits > 0) == (r_logits > 0)).float().mean().item())
    result = dict(samples=m, rel_logit_diff=diff / max(scale, 1e-12), max_abs_logit=scale,
                  max_iou_diff=iou_diff, mask_agreement=agree, max_rel_loss_diff=loss_diff,
                  tolerance=args.check_tol, **fast)
    # fp32 losses of the same logits agree to ~1e-7; a tenth of the logit tolerance still tells
    # a loss computed at another size (~5e-4 apart on the tiny smoke model) from the same loss
    result['loss_tolerance'] = args.check_tol / 10
    ok = (result['rel_logit_diff'] <= args.check_tol and iou_diff <= args.check_tol * 10
          and loss_diff <= result['loss_tolerance'])
    result['passed'] = bool(ok)
    if not ok:
        raise AssertionError(f'ours and the reference do not compute the same thing: {result}')
    return result


# ---------------------------------------------------------------------------- timing
def interleaved(fns, warmup, repeats, device, log=None):
    """Wall and process-CPU seconds per call of each fn: warm-ups first, then repeats
    alternating the order (ours, ref, ref, ours, ...) so that drifting load hits both."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            gc.collect()
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            fns[n]()
            sync(device)
            wall[n].append(time.perf_counter() - t0)
            cpu[n].append(time.process_time() - c0)
            if log:
                log(f'  {n} repeat {r + 1}/{repeats}: {wall[n][-1]:.3f} s wall, '
                    f'{cpu[n][-1]:.3f} s CPU, load {load_average()}')
    return dict(wall=wall, cpu=cpu)


def ratio_of(ours, reference, unit):
    """The ratio of a row: above 1 means ours is better, whatever the unit."""
    if not ours or not reference:
        return None
    return ours / reference if unit in HIGHER_IS_BETTER_UNITS else reference / ours


def make_row(name, ours, reference, unit, samples=None, note=None, cpu=None):
    """One result row; ``cpu`` = (ours, reference) in the same unit computed from process CPU time."""
    higher = unit in HIGHER_IS_BETTER_UNITS
    row = dict(name=name, ours=ours, reference=reference, unit=unit,
               ratio=ratio_of(ours, reference, unit), better='higher' if higher else 'lower')
    if cpu is not None:
        row.update(ours_cpu=cpu[0], reference_cpu=cpu[1], cpu_ratio=ratio_of(cpu[0], cpu[1], unit))
    if samples:
        row['samples'] = samples
    if note:
        row['note'] = note
    return row


def timed_row(name, t, unit, per, note=None, sides=('ours', 'ref')):
    """A row from :func:`interleaved` times: ``per`` turns seconds into the unit
    (e.g. images per step for images/s, images for s/image)."""
    o, r = sides

    def value(seconds):
        return per / seconds if unit in HIGHER_IS_BETTER_UNITS else seconds / per

    med = {k: {n: statistics.median(v) for n, v in t[k].items()} for k in t}
    cpu = None
    if any(t['cpu'][o]):
        cpu = (value(med['cpu'][o]), value(med['cpu'][r]))
    samples = dict(ours_wall_s=t['wall'][o], reference_wall_s=t['wall'][r],
                   ours_cpu_s=t['cpu'][o], reference_cpu_s=t['cpu'][r])
    return make_row(name, value(med['wall'][o]), value(med['wall'][r]), unit, samples, note, cpu)


# ----------------------------------------------------------------------------- memory
# The peak measurement is the package's, shared with tools/estimate_memory.py.
from mmsamptx.apis.memory import (StepOutOfMemory, is_out_of_memory,  # noqa: E402,F401
                                  measure_peak)
from mmsamptx.apis.memory import release_free_memory as _release_free_memory  # noqa: E402


def profiled_tensor_peak(fn):
    """Peak MiB of tensor memory allocated during fn above what was allocated before it,
    from torch.profiler's memory events (the CPU counterpart of max_memory_allocated)."""
    import tempfile

    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = osp.join(tmp, 'trace.json')
        prof.export_chrome_trace(path)
        with open(path) as f:
            trace = json.load(f)
    events = trace['traceEvents'] if isinstance(trace, dict) else trace
    mem = sorted((e for e in events if e.get('name') == '[memory]'), key=lambda e: e['ts'])
    if not mem:
        return 0.0
    # "Total Allocated" counts from the profiler's start, so it is already a growth
    return max(0.0, max(e['args']['Total Allocated'] for e in mem)) / MIB


def make_sides(args, cfg, device, which=('ours', 'ref')):
    """The method's two sides: :class:`Sides` (SAM-PTx) or :class:`CGSSides`."""
    kind = {'clip_guided_sam': CGSSides, 'evf_sam': EVFSides}.get(args.method, Sides)
    return kind(args, cfg, device, which)


def memory_step(args, cfg, device, row, side):
    """Build one side only; return the step whose peak memory the row measures."""
    sides = make_sides(args, cfg, device, which=(side,))
    return {('train_memory', 'ours'): sides.ours_train_step,
            ('train_memory', 'ref'): sides.ref_train_step,
            ('infer_memory', 'ours'): getattr(sides, 'ours_infer', None),
            ('infer_memory', 'ref'): getattr(sides, 'ref_infer', None)}[(row, side)]


def memory_inline(args, cfg, device, row, side, kind):
    """``--memory-isolation inline``: (peak MiB, out of memory?) of one side, in this process."""
    fn = memory_step(args, cfg, device, row, side)
    try:
        if kind == ':tensors':
            return profiled_tensor_peak(fn), False
        return measure_peak(fn, device), False
    except StepOutOfMemory as e:
        return e.bound_mib, True
    finally:
        del fn
        _release_free_memory()


def run_worker(args, cfg, device):
    """Subprocess: build one side only, measure one step's peak memory, print it as JSON.

    ``<row>:<side>`` measures the primary peak (CUDA allocator or CPU RSS growth);
    ``<row>:<side>:tensors`` the profiler's tensor-allocation peak (CPU).
    """
    row, side, *kind = args.worker.split(':')
    fn = memory_step(args, cfg, device, row, side)
    what = dict(row=row, side=side, kind=kind[0] if kind else 'primary')

    def report(growth):
        # survives an out-of-memory kill: the parent's measured lower bound
        print(json.dumps(dict(what, growth_mib=growth)), flush=True)

    try:
        if kind == ['tensors']:
            peak = profiled_tensor_peak(fn)
        else:
            peak = measure_peak(fn, device, report)
    except StepOutOfMemory as e:  # the allocator refused: what was reached is a lower bound
        print(json.dumps(dict(what, out_of_memory=True, growth_mib=e.bound_mib)), flush=True)
        return
    print(json.dumps(dict(what, peak_mib=peak)))


def worker_peak(proc, row, side):
    """(peak MiB, out of memory?) from a memory worker's output. A worker whose step ran out of
    memory (refused by the allocator, or killed by SIGKILL, as the kernel's OOM killer does) gives
    the largest growth it reported, measured while the step ran: a lower bound of its peak."""
    lines = []
    for text in proc.stdout.splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue  # any other output of the worker
        if isinstance(line, dict):
            lines.append(line)
    done = next((x for x in lines if 'peak_mib' in x), None)
    if proc.returncode == 0 and done is not None:
        return done['peak_mib'], False
    growth = [x['growth_mib'] for x in lines if 'growth_mib' in x]
    refused = any(x.get('out_of_memory') for x in lines)
    killed = proc.returncode in (-9, 137)
    if growth and (refused or killed):
        return max(growth), True
    if killed:
        raise RuntimeError(f'memory worker {row}:{side} was killed (SIGKILL) before its step '
                           'reported any memory (while building its model?)')
    raise RuntimeError(f'memory worker {row}:{side} failed (exit {proc.returncode}):\n'
                       f'{proc.stderr[-3000:]}')


def worker_command(args, worker):
    """The command line of a memory worker ``<row>:<side>[:tensors]``: this run's options without
    those the worker must not act on (--json, --rows, --plot, --worker)."""
    clean, skip = [], False
    for a in (a for a in args.argv if a):
        if skip:
            skip = False
            continue
        if a in ('--json', '--rows', '--worker', '--plot'):
            skip = True
            continue
        if a.startswith(('--json=', '--rows=', '--worker=', '--plot=')):
            continue
        clean.append(a)
    return [sys.executable, osp.abspath(__file__), *clean, '--worker', worker]


def memory_in_subprocesses(args, row, log, kind='', cfg=None, device=None):
    """Median peak MiB of ours and the reference, each side in fresh subprocesses (or in this
    process with ``--memory-isolation inline``), alternating; and the sides that ran out of
    memory (their value is then a lower bound)."""
    peaks = {'ours': [], 'ref': []}
    bounds = {'ours': [], 'ref': []}
    for r in range(args.memory_repeats):
        for side in (('ref', 'ours') if r % 2 == 0 else ('ours', 'ref')):
            if args.memory_isolation == 'inline':
                peak, out_of_memory = memory_inline(args, cfg, device, row, side, kind)
            else:
                cmd = worker_command(args, f'{row}:{side}{kind}')
                proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
                peak, out_of_memory = worker_peak(proc, row, side)
            (bounds if out_of_memory else peaks)[side].append(peak)
            log(f'  {side} peak{kind}: ' + (f'OUT OF MEMORY, at least {peak:.1f} MiB'
                                            if out_of_memory else f'{peak:.1f} MiB'))
    # A side measured at least once is measured (its bounds, from other runs, are dropped);
    # a side that never finished gets its smallest bound, the one every run exceeded.
    oom = {side for side in peaks if not peaks[side]}
    for side in oom:
        peaks[side] = [min(bounds[side])]
    return statistics.median(peaks['ours']), statistics.median(peaks['ref']), peaks, oom


# --------------------------------------------------------------------------- text150
def text150_row(args, cfg, device, log):
    """Text-only inference over the vocabulary: shared early blocks (text in last k) vs text in all."""
    from mmsamptx.models.backbones.sam_image_encoder import resolve_arch
    adapter = cfg.model.backbone.get('adapter_cfg')
    from mmseg.registry import MODELS
    if adapter is None or not getattr(MODELS.get(adapter['type']), 'conditioned', False):
        return None, 'text150 left out: the config has no text-conditioned adapter'
    depth = resolve_arch(cfg.model.backbone.get('arch', 'vit_b'))['depth']
    k = min(args.shared_k, depth - 1)
    size = args.text_img_size or args.img_size
    names = None
    from mmsamptx.models.segmentors.class_prompted_sam import resolve_class_names
    if len(resolve_class_names(cfg.model.class_names)) != args.text_classes:
        names = [f'class {i}' for i in range(args.text_classes)]
    shared = build_ours(cfg, args, device, size, adapter_blocks=list(range(depth - k, depth)),
                        class_names=names, test_mode='text').eval()
    full = build_ours(cfg, args, device, size, adapter_blocks=None, class_names=names,
                      test_mode='text').eval()
    assert shared.backbone.first_conditioned_block == depth - k
    assert full.backbone.first_conditioned_block == 0
    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(args.seed + 3))
    image = image.to(device)

    def run(model):
        with torch.no_grad():
            model.predict(image)

    times = interleaved(dict(shared=lambda: run(shared), full=lambda: run(full)),
                        args.warmup, args.repeats, device, log)
    chunk = shared.test_cfg['class_chunk']
    name = (f'text-only inference, {args.text_classes} classes: shared early blocks '
            f'(text in last {k} of {depth}) vs text in all blocks')
    note = (f'both ours, {size}x{size} input, class_chunk={chunk}; "reference" = text in every block')
    return timed_row(name, times, 's/image', 1, note, sides=('shared', 'full')), None


# ----------------------------------------------------------------------------- cache
#: the trainable part of each cached variant: decode_head overrides of the config
CACHE_VARIANTS = {
    'decoder': ('decoder-only', 'the mask decoder trainable',
                dict(frozen_decoder=False, prompt_cfg=None)),
    'prompt': ('prompt-tuning', 'PTSAM: 8 decoder prompt tokens trainable, the decoder frozen',
               dict(frozen_decoder=True, prompt_cfg=dict(type='DecoderPromptTokens', num_tokens=8))),
}


def cache_rows(args, cfg, device, log):
    """The cache rows of every ``--cache-variants`` variant. Returns (rows, notes)."""
    rows, notes = [], []
    for variant in args.cache_variants:
        log(f'  {CACHE_VARIANTS[variant][0]} ...')
        got, note = cache_row(args, cfg, device, log, variant)
        rows.extend(got or [])
        if note:
            notes.append(note)
    return rows, notes


def check_decoders(ours, ref, images, samples, args):
    """fp32: ours' head and the reference's decoder give the same logits on one embedding."""
    picks = naive_training_samples(samples[:1], 1, torch.Generator().manual_seed(args.seed),
                                   num_points=args.points)
    _, c, pts, _ = picks[0]
    embeds = ours.class_embeddings()  # None unless the head reads text
    text = None if embeds is None else embeds[c:c + 1].float()
    with torch.no_grad(), fp32_trunk(ours):
        emb = ours.encode_samples(images[:1], torch.zeros(1, dtype=torch.long, device=images.device),
                                  text)
        o_logits, _ = ours.decode_head(emb, pts, None, None, text)
        r_logits, _ = ref.decode(emb.float(), text, pts)
    rel = ((o_logits - r_logits).abs().max() / r_logits.abs().max().clamp(min=1e-12)).item()
    if rel > args.check_tol:
        raise AssertionError(f'cache rows: ours\' decoder and the reference\'s differ '
                             f'(relative logit difference {rel:.2e} > {args.check_tol})')
    return rel


def cache_row(args, cfg, device, log, variant='decoder'):
    """A cached epoch (no adapters, frozen encoder, one ``CACHE_VARIANTS`` trainable part): the
    segmentor's image-embedding cache (filled by an earlier epoch) against ours re-encoding
    every image, and against the naive reference's epoch (segment_anything's encoder re-run on
    every image). Returns ([row, row], None) or (None, note)."""
    import inspect

    from mmsamptx.models.segmentors.class_prompted_sam import ClassPromptedSAM
    if 'embedding_cache' not in inspect.signature(ClassPromptedSAM.__init__).parameters:
        return None, 'cache row left out: ClassPromptedSAM has no embedding_cache in this tree'
    label, trains, head_overrides = CACHE_VARIANTS[variant]
    models = {}
    for name, cache in (('cached', dict(type='memory')), ('encode', None)):
        m = build_ours(cfg, args, device, args.img_size, adapter_blocks='none', embedding_cache=cache,
                       head_overrides=head_overrides)
        if m.embedding_cache is None and cache is not None:
            return None, f'{label} cache row left out: the model built no embedding cache'
        models[name] = m.train()
    n_steps = args.cache_steps
    images, samples, _, _ = make_inputs(args, device, args.img_size, len(models['encode'].class_names),
                                        batch=args.batch * n_steps)
    opts = {n: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
            for n, m in models.items()}

    def epoch(name):
        model, opt = models[name], opts[name]
        for s in range(n_steps):
            sl = slice(s * args.batch, (s + 1) * args.batch)
            losses = model.loss(images[sl], samples[sl])
            sum(losses.values()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    ref = build_reference(models['encode']).train()
    decoder_diff = check_decoders(models['encode'], ref, images, samples, args)
    log('  filling the cache (an untimed first epoch) ...')
    epoch('cached')
    cache = models['cached'].embedding_cache
    filled = (cache.hits, cache.misses) if hasattr(cache, 'hits') else None
    embeds = models['encode'].class_embeddings()  # None unless the head reads text
    ref_opt = torch.optim.AdamW([p for p in ref.parameters() if p.requires_grad], lr=1e-4)
    ref_rng = torch.Generator().manual_seed(args.seed + 3)
    background = models['encode'].train_cfg['background']

    def ref_epoch():
        for s in range(n_steps):
            sl = slice(s * args.batch, (s + 1) * args.batch)
            picks = naive_training_samples(samples[sl], args.classes_per_image, ref_rng,
                                           num_points=args.points, background=background)
            embs = {b: ref.image_encoder(images[sl][b:b + 1]) for b in {p[0] for p in picks}}
            out = [ref.decode(embs[b], None if embeds is None else embeds[c:c + 1].float(), pts)
                   for b, c, pts, _ in picks]
            losses = ref.loss(torch.cat([o[0] for o in out]), torch.cat([o[1] for o in out]),
                              torch.stack([t for *_, t in picks]))
            sum(losses.values()).backward()
            ref_opt.step()
            ref_opt.zero_grad(set_to_none=True)

    times = interleaved(dict(cached=lambda: epoch('cached'), encode=lambda: epoch('encode'),
                             ref=ref_epoch), args.warmup, args.repeats, device, log)
    hits = (cache.hits, cache.misses) if hasattr(cache, 'hits') else None
    n = args.batch * n_steps
    head = models['cached'].decode_head
    note = (f'ours without adapters, frozen encoder, {trains}, {n_steps} step(s) of batch '
            f'{args.batch}, K={args.classes_per_image}, losses at the {head.loss_size} size; the '
            'cache was filled by one earlier epoch'
            + (f'; cache hits/misses after filling {filled}, at the end {hits}' if hits else '')
            + f'; fp32 decoder check: relative logit difference {decoder_diff:.1e}')
    rows = [timed_row(f'{label} epoch of {n} images: embedding cache vs ours re-encoding',
                      times, 's/epoch', 1, note, sides=('cached', 'encode')),
            timed_row(f'{label} epoch of {n} images: embedding cache vs reference re-encoding',
                      times, 's/epoch', 1, note + '; reference: segment_anything encoder fp32 eager '
                      'once per image per step, decoder per sample', sides=('cached', 'ref'))]
    return rows, None


# ------------------------------------------------------------------ CLIP-Guided SAM
# ``--method clip_guided_sam``: CLIP-Guided SAM (arXiv 2605.24807; docs/clip_guided_sam.md) against
# a naive reference that computes as the authors' code does: for every (image, class) sample a
# CLIPSurgery vision forward (explicit softmax attention in the surgery blocks), the class text
# through CLIP's text tower and the empty-prompt feature r through every redundant template,
# recomputed at every step, then SAM (segment_anything's modules, the semantic adapters written
# plainly) in float32, eager, one sample at a time.
#: the reference's text chain is the authors' one; ours' encoder must be configured the same way
CGS_TEXT_CHAIN = dict(templates=('{}',), ensemble_normalize=False, subtract_redundant=True,
                      normalize=True)


def configure_cgs(cfg, args):
    """Apply ``--clip-size`` / ``--clip-model`` to the config's guide; no network (random weights).

    A smaller CLIP (e.g. the tests' ``mmsamptx-tiny-clip``) also sets the semantic adapters'
    input widths to its joint width and caps the surgery / fine-tuned blocks at its depth.
    """
    import open_clip

    import mmsamptx.models.text_encoders  # noqa: F401  (registers the tiny CLIP name)
    guide = cfg.model.get('guide')
    if guide is None:
        raise SystemExit(f'{args.config}: --method clip_guided_sam needs a model with a CLIP guide '
                         '(model.guide), e.g. configs/clip_guided_sam/cgs_voc_1-16.py')
    guide.pretrained = None
    guide.clip_size = args.clip_size
    if args.clip_model is not None:
        known = open_clip.list_models()
        if args.clip_model not in known:
            raise SystemExit(f'--clip-model {args.clip_model!r}: not an open_clip model name '
                             f'(e.g. {", ".join(known[:5])}, ...)')
        guide.model_name = args.clip_model
        numbers = open_clip.get_model_config(args.clip_model)
        layers = numbers['vision_cfg']['layers']
        for key in ('surgery_blocks', 'finetune_attn_blocks'):
            guide[key] = min(int(guide.get(key, 0)), layers)
        adapters = cfg.model.backbone.get('adapter_cfg')
        for adapter in (adapters if isinstance(adapters, list) else [adapters]):
            if adapter is not None and adapter.get('type') == 'SemanticAdapter':
                adapter.text_dims = adapter.vision_dims = numbers['embed_dim']
    text_cfg = dict(guide.get('text_cfg') or {})
    wrong = {k: text_cfg[k] for k in CGS_TEXT_CHAIN if k in text_cfg and text_cfg[k] != CGS_TEXT_CHAIN[k]}
    if wrong:
        raise SystemExit(f'{args.config}: guide.text_cfg {wrong} is not the authors\' text chain '
                         f'{CGS_TEXT_CHAIN}, which the naive reference computes')


class NaiveSemanticAdapter(nn.Module):
    """CLIP-Guided SAM's semantic adapter, plainly: scale * up(gelu(down(h + U_l + T))), with
    T = gelu(text_proj(t)) and U_l = the CLIP patches of vision_proj(V + s) (CLS dropped)
    resized bilinearly to the block's grid; ``cond`` = (t, V, s) set as module state."""

    def __init__(self, embed_dims, bottleneck, scale, text_dims, vision_dims, use_text, use_vision,
                 use_similarity):
        super().__init__()
        self.down = nn.Linear(embed_dims, bottleneck)
        self.up = nn.Linear(bottleneck, embed_dims)
        self.text_proj = nn.Linear(text_dims, embed_dims) if use_text else None
        self.vision_proj = nn.Linear(vision_dims, embed_dims) if use_vision or use_similarity else None
        self.use_vision, self.use_similarity = use_vision, use_similarity
        self.vision_dims = vision_dims
        self.scale = scale

    def forward(self, h, cond):
        text, vision, similarity = cond
        x = h
        if self.vision_proj is not None:
            if self.use_vision:
                u = vision + similarity if self.use_similarity else vision
            else:
                u = similarity.expand(-1, -1, self.vision_dims)
            u = self.vision_proj(u)[:, 1:]  # (1, N, C), CLS dropped after the projection
            g = int(round(u.shape[1] ** 0.5))
            u = u.reshape(u.shape[0], g, g, -1).permute(0, 3, 1, 2)
            u = F.interpolate(u, size=h.shape[1:3], mode='bilinear', align_corners=False)
            x = x + u.permute(0, 2, 3, 1)
        if self.text_proj is not None:
            x = x + F.gelu(self.text_proj(text))[:, None, None, :]
        return self.scale * self.up(F.gelu(self.down(x)))


class NaiveCLIPSurgery(nn.Module):
    """The authors' CLIPSurgery image pass, plainly: the open_clip ViT's patch embedding, its
    positional table interpolated once (written into the model, as their first dummy pass
    does), its own blocks before the surgery ones, and in the last ``surgery_blocks`` blocks
    both attentions computed explicitly (softmax(q kᵀ/√d) v and softmax(v vᵀ/√d) v) from the
    block's in_proj; ln_post and proj on every token. One image per call."""

    def __init__(self, guide):
        super().__init__()
        visual = copy.deepcopy(guide.visual)
        self.conv1, self.ln_pre, self.ln_post = visual.conv1, visual.ln_pre, visual.ln_post
        self.class_embedding, self.proj = visual.class_embedding, visual.proj
        self.blocks = visual.transformer.resblocks
        self.clip_size, self.surgery_blocks = guide.clip_size, guide.surgery_blocks
        table = visual.positional_embedding.detach()
        old, new = guide.pretrained_grid, guide.grid
        if tuple(old) != tuple(new):
            patches = table[1:].reshape(1, *old, -1).permute(0, 3, 1, 2)
            patches = F.interpolate(patches, size=tuple(new), mode='bilinear', align_corners=False)
            table = torch.cat([table[:1], patches.permute(0, 2, 3, 1).reshape(new[0] * new[1], -1)])
        self.positional_embedding = nn.Parameter(table.clone(), requires_grad=False)

    def forward(self, image):
        """image (1, 3, H, W), SAM-normalised -> E (1, 1 + N, Cc)."""
        x = F.interpolate(image, size=(self.clip_size, self.clip_size), mode='bilinear',
                          align_corners=False)
        x = self.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.expand(x.shape[0], 1, -1), x], dim=1)
        x = self.ln_pre(x + self.positional_embedding)
        first = len(self.blocks) - self.surgery_blocks
        for block in self.blocks[:first]:
            x = block(x)
        x_ori = x_s = x
        for block in self.blocks[first:]:
            attn = block.attn
            b, n, width = x_ori.shape
            heads = attn.num_heads
            d = width // heads
            qkv = F.linear(block.ln_1(x_ori), attn.in_proj_weight, attn.in_proj_bias)
            q, k, v = (t.reshape(b, n, heads, d).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
            a_ori = ((q @ k.transpose(-2, -1)) * d ** -0.5).softmax(dim=-1)
            a_s = ((v @ v.transpose(-2, -1)) * d ** -0.5).softmax(dim=-1)
            o = attn.out_proj((a_ori @ v).transpose(1, 2).reshape(b, n, width))
            z = attn.out_proj((a_s @ v).transpose(1, 2).reshape(b, n, width))
            x_s = x_s + block.ls_1(z)
            x_ori = x_ori + block.ls_1(o)
            x_ori = x_ori + block.ls_2(block.mlp(block.ln_2(x_ori)))
        x = torch.cat([x_ori[:, :1], x_s[:, 1:]], dim=1)
        return self.ln_post(x) @ self.proj


class NaiveCLIPText(nn.Module):
    """The authors' text feature of one class, recomputed at every call: the raw CLIP feature of
    the bare name (mean over its synonyms, no_grad) minus r, the unit mean of the unit features
    of the empty string through every redundant template (computed with autograd on, as they
    do), L2-normalised."""

    def __init__(self, encoder):
        super().__init__()
        options = dict(templates=encoder.templates, ensemble_normalize=encoder.ensemble_normalize,
                       subtract_redundant=encoder.subtract_redundant, normalize=encoder.normalize)
        if options != CGS_TEXT_CHAIN:
            raise ValueError(f'the guide\'s text encoder runs {options}; the naive reference '
                             f'computes the authors\' chain {CGS_TEXT_CHAIN}')
        self.clip = copy.deepcopy(encoder.clip)
        self.tokenizer = encoder.tokenizer
        self.synonyms = dict(encoder.synonyms)
        self.redundant_prompts = [t.format('') for t in encoder.redundant_templates]

    def encode(self, texts):
        tokens = self.tokenizer(texts).to(next(self.clip.parameters()).device)
        return self.clip.encode_text(tokens, normalize=False)

    def forward(self, name):
        """-> t (1, Cc)."""
        with torch.no_grad():
            raw = self.encode(list(self.synonyms.get(name, (name,)))).mean(dim=0, keepdim=True)
        feats = self.encode(self.redundant_prompts)
        feats = feats / feats.norm(dim=-1, keepdim=True)
        r = feats.mean(dim=0, keepdim=True)
        r = r / r.norm(dim=-1, keepdim=True)
        t = raw - r
        return t / t.norm(dim=-1, keepdim=True)


class CGSReference(nn.Module):
    """CLIP-Guided SAM as the authors' code computes one (image, class) sample: CLIP vision and
    text per sample, similarity, min–max map, points and dense prompt, then SAM."""

    def __init__(self, sam, vision, text, class_names, norm, threshold, num_points):
        super().__init__()
        self.sam, self.vision, self.text = sam, vision, text
        self.class_names = list(class_names)
        self.norm, self.threshold, self.num_points = norm, threshold, num_points

    def forward_sample(self, image, c, points=None, generator=None):
        """image (1, 3, H, W), class id c, points (1, N, 2) or None (drawn from the similarity
        region) -> logits (1, 1, H/4, W/4), iou (1, 1); also the map S (1, 1, H, W)."""
        h, w = image.shape[-2:]
        tokens = self.vision(image)  # a CLIP vision forward per sample
        t = self.text(self.class_names[c])  # r recomputed per sample
        vision = tokens / tokens.norm(dim=1 if self.norm == 'tokens' else -1, keepdim=True)
        sim = vision @ t[:, :, None]  # (1, 1 + N, 1)
        p = sim[:, 1:, 0]
        p = (p - p.min(dim=1, keepdim=True).values) / (
            p.max(dim=1, keepdim=True).values - p.min(dim=1, keepdim=True).values)
        g = int(round(p.shape[1] ** 0.5))
        smap = F.interpolate(p.reshape(1, 1, g, g), size=(h, w), mode='bilinear', align_corners=False)
        if points is None:  # uniform with replacement from S > threshold, as (x, y)
            ys, xs = torch.nonzero(smap[0, 0] > self.threshold, as_tuple=True)
            j = torch.randint(ys.numel(), (self.num_points,), generator=generator).to(ys.device)
            points = torch.stack([xs[j], ys[j]], -1).float()[None]
        dense = (F.interpolate(smap, size=(h // 4, w // 4), mode='bilinear',
                               align_corners=False) > self.threshold).float() * 255.0
        self.sam.set_text((t, vision, sim))
        emb = self.sam.image_encoder(image)
        logits, iou = self.sam.decode(emb, t, points, masks=dense)
        return logits, iou, smap


def build_cgs_reference(ours) -> CGSReference:
    """The naive CLIP-Guided SAM with ours' weights: SAM as :func:`build_reference` builds it,
    CLIP's vision and text towers copied from ours' guide (trainable where ours' are)."""
    guide = ours.guide
    if guide.text_encoder is None:
        raise ValueError('the guide reads its text features from a file (text_features=); the '
                         'naive reference needs the text tower')
    sam = build_reference(ours)
    vision = NaiveCLIPSurgery(guide)
    text = NaiveCLIPText(guide.text_encoder)
    ref = CGSReference(sam, vision, text, ours.class_names, guide.norm, guide.threshold,
                       ours.train_cfg['num_points'])
    return ref.to(next(ours.parameters()).device)


def ours_cgs_encode_decode(model, images, b, cls, pts, text_embeds):
    """Ours' logits, IoUs and similarity maps of image b's class samples ``cls`` (M,) with the
    points ``pts`` (M, N, 2): one CLIP image pass, the cached t, all samples as one batch."""
    index = torch.zeros(len(cls), dtype=torch.long, device=images.device)
    cond, g = model.guidance(images[b:b + 1], index, text_embeds[cls])
    emb = model.encode_samples(images[b:b + 1], index, cond)
    logits, iou = model.decode_head(emb, pts, None, None, g.text, masks=g.dense_prompt)
    return logits, iou, g.sim_map


class CGSSides(Sides):
    """Ours (a CLIP-Guided SAM config) and the naive reference on shared inputs."""

    def __init__(self, args, cfg, device, which=('ours', 'ref')):
        self.args, self.device = args, device
        ours = build_ours(cfg, args, device, args.img_size)
        ours.test_cfg['class_chunk'] = args.infer_class_chunk
        self.class_names = ours.class_names
        # ours' t: once per class, cached (a reference-only process needs none)
        self.embeds = ours.class_embeddings() if 'ours' in which else None
        self.background = ours.train_cfg['background']
        text_cfg = dict(ours.test_cfg, mode='text')
        self.text_classes = (ours.target_classes(text_cfg) if text_cfg['target_classes'] is not None
                             else list(range(len(self.class_names))))[:args.text_classes]
        ours.test_cfg['target_classes'] = self.text_classes  # what mode 'text' prompts
        self.ref = build_cgs_reference(ours) if 'ref' in which else None
        self.ours = ours if 'ours' in which else None
        del ours
        self.images, self.samples, self.classes, self.points = make_inputs(
            args, device, args.img_size, len(self.class_names))
        self.ref_rng = torch.Generator().manual_seed(args.seed + 2)
        self.opt = {}

    def ref_train_step(self):
        ref = self.ref
        ref.train()
        opt = self._optimizer('ref', ref)
        logits, ious = [], []
        picks = self.naive_picks()
        for b, c, _, _ in picks:  # semi-automatic: points from the sample's similarity region
            lg, io, _ = ref.forward_sample(self.images[b:b + 1], c, None, self.ref_rng)
            logits.append(lg)
            ious.append(io)
        losses = ref.sam.loss(torch.cat(logits), torch.cat(ious), torch.stack([t for *_, t in picks]))
        sum(losses.values()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    @torch.no_grad()
    def ours_text_only(self):
        """Ours' text-only semantic map of image 0 over the vocabulary (``model.predict``)."""
        self.ours.eval()
        mode = self.ours.test_cfg['mode']
        self.ours.test_cfg['mode'] = 'text'
        try:
            return self.ours.predict(self.images[:1])[0].pred_sem_seg.data
        finally:
            self.ours.test_cfg['mode'] = mode

    @torch.no_grad()
    def ref_text_only(self):
        """The reference's text-only map of image 0: one full sample per class, each pixel the
        class of highest sigmoid(logit) x predicted IoU."""
        self.ref.eval()
        image = self.images[:1]
        scores = []
        for c in self.text_classes:
            logits, iou, _ = self.ref.forward_sample(
                image, c, None, torch.Generator().manual_seed(self.args.seed + c))
            mask = F.interpolate(logits[:, :1], size=image.shape[-2:], mode='bilinear',
                                 align_corners=False)[0, 0]
            scores.append(mask.sigmoid() * iou[0, 0])
        best = torch.stack(scores).argmax(dim=0)
        return torch.tensor(self.text_classes, device=best.device)[best][None]


def check_cgs_equivalence(sides, args):
    """Assert in fp32 that ours and the reference give the same t, similarity maps, masks and
    losses on one input (2 classes of image 0, the same points on both sides)."""
    ours, ref, dev = sides.ours, sides.ref, sides.device
    m = min(2, args.classes_per_image)
    cls, pts = sides.classes[0][:m].to(dev), sides.points[0][:m].to(dev)
    ours.eval()
    ref.eval()
    with torch.no_grad():
        with fp32_trunk(ours):
            o_logits, o_iou, o_map = ours_cgs_encode_decode(ours, sides.images, 0, cls, pts,
                                                            sides.embeds)
        outs = [ref.forward_sample(sides.images[:1], c, pts[i:i + 1]) for i, c in enumerate(cls.tolist())]
        r_logits, r_iou, r_map = (torch.cat([o[j] for o in outs]) for j in range(3))
        text_diff = max((sides.embeds[c:c + 1] - ref.text(sides.class_names[c])).abs().max().item()
                        for c in cls.tolist())
        scale = r_logits.abs().max().item()
        diff = (o_logits.float() - r_logits).abs().max().item()
        iou_diff = (o_iou.float() - r_iou).abs().max().item()
        map_diff = (o_map - r_map).abs().max().item()
        agree = ((o_logits > 0) == (r_logits > 0)).float().mean().item()
        gt = sides.samples[0].gt_sem_seg.data[0]
        ignored = 255 if sides.background == 'ignore' else 0
        targets = torch.stack([((gt == c).long().masked_fill(gt == 255, ignored))
                               for c in cls.tolist()])
        o_loss = ours.decode_head.loss(o_logits, o_iou, targets, ours.ignore_index)
        r_loss = ref.sam.loss(r_logits, r_iou, targets)
        if set(o_loss) != set(r_loss):
            raise AssertionError(f'ours and the reference compute different loss terms: '
                                 f'{sorted(o_loss)} against {sorted(r_loss)}')
        loss_diff = max(abs(o_loss[k].item() - r_loss[k].item()) / max(abs(r_loss[k].item()), 1e-6)
                        for k in r_loss)
    result = dict(samples=m, rel_logit_diff=diff / max(scale, 1e-12), max_abs_logit=scale,
                  max_iou_diff=iou_diff, mask_agreement=agree, max_rel_loss_diff=loss_diff,
                  max_text_diff=text_diff, max_similarity_map_diff=map_diff,
                  tolerance=args.check_tol, loss_tolerance=args.check_tol / 10)
    ok = (result['rel_logit_diff'] <= args.check_tol and iou_diff <= args.check_tol * 10
          and loss_diff <= result['loss_tolerance'] and text_diff <= args.check_tol
          and map_diff <= args.check_tol)
    result['passed'] = bool(ok)
    if not ok:
        raise AssertionError(f'ours and the reference do not compute the same thing: {result}')
    return result


def cgs_timed_rows(sides, args, device, log, result):
    """--method clip_guided_sam: the training step and text-only inference rows (timed, interleaved)."""
    k, chunk = args.classes_per_image, sides.ours.test_cfg['class_chunk']
    n = len(sides.text_classes)
    if 'train' in args.rows:
        log('training step ...')
        t = interleaved(dict(ours=sides.ours_train_step, ref=sides.ref_train_step), args.warmup,
                        args.repeats, device, log)
        result['rows'].append(timed_row(
            f'training step (batch {args.batch}, K={k} classes/image, {args.points} similarity points)',
            t, 'images/s', args.batch,
            'ours: one CLIP image pass per image, t cached, the K samples as one batch; reference: '
            'a CLIP vision pass, the text tower on the name and on every redundant prompt, and SAM '
            'per sample'))
    if 'text_only' in args.rows:
        log(f'text-only inference over {n} classes ...')
        t = interleaved(dict(ours=sides.ours_text_only, ref=sides.ref_text_only), args.warmup,
                        args.repeats, device, log)
        result['rows'].append(timed_row(
            f'text-only inference, {n} classes (similarity points + dense prompt)', t, 's/image', 1,
            f'ours: model.predict in test_cfg.mode=\'text\', one CLIP image pass per image, t cached, '
            f'class chunks of {chunk}; reference: per class a CLIP vision pass, the text tower on the '
            'name and every redundant prompt, and SAM'))


# ----------------------------------------------------------------------------- EVF-SAM
#: expressions the EVF-SAM rows draw from (and train their small sentencepiece model on)
EVF_EXPRESSIONS = (
    'the man on the left', 'a red car parked by the road', 'the smallest dog',
    'the woman in a blue coat holding an umbrella', 'the second bottle from the right',
    'the tree behind the house', 'a white plate with bread on it', 'the boy wearing a cap',
    'the chair nearest to the window', 'the zebra at the top left', 'the large brown horse',
    'the person sitting on the bench')


def evf_tokenizer_file(folder):
    """A small sentencepiece model trained on :data:`EVF_EXPRESSIONS`: BEiT-3's tokenizer file
    (beit3.spm) cannot be downloaded here, and tokenising is a negligible part of a call; the ids
    still follow BEiT-3's layout through :class:`BEiT3Tokenizer`."""
    import io

    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(EVF_EXPRESSIONS * 8), model_writer=buf,
                                   vocab_size=120, character_coverage=1.0, hard_vocab_limit=False,
                                   minloglevel=2)
    path = osp.join(folder, 'bench.spm')
    with open(path, 'wb') as f:
        f.write(buf.getvalue())
    return path


def load_evf_config(args, spm_file):
    """The EVF-SAM config with random weights (no files, no network), ``--arch`` for SAM,
    ``--beit3-arch`` for BEiT-3, ``--img-size`` as SAM's input side."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmsamptx  # noqa: F401  (registers the components)
    init_default_scope('mmseg')
    cfg = Config.fromfile(args.config)
    model = cfg.model
    if model.get('type') != 'EVFSAM':
        raise SystemExit(f'{args.config}: --method evf_sam needs an EVFSAM model, got '
                         f'{model.get("type")!r}')
    model.checkpoint = None
    model.visual_model.checkpoint = None
    model.visual_model.img_size = args.img_size
    if args.arch is not None:
        model.visual_model.arch = args.arch
    if args.beit3_arch is not None:
        model.fusion_encoder.arch = args.beit3_arch
    model.fusion_encoder.init_cfg = None
    model.tokenizer = dict(model_file=spm_file)
    return cfg


class EVFSides:
    """One EVF-SAM model (random weights) called the two ways each row compares.

    ``multi_expression``: ours gives all E expressions of an image in one call (one SAM image
    encoding, the expressions through BEiT-3 and the decoder as one padded batch); the reference
    makes one call per expression, as the official inference path does (SAM's image encoder,
    BEiT-3 and the decoder once per expression). ``train`` / ``train_memory``: one training step
    (E expressions, BCE + Dice at the original size, backward, a plain SGD step, which holds no
    optimiser state) with BEiT-3's activation checkpointing on (ours) and off (reference); the
    same weights, the flag flipped per step.
    """

    def __init__(self, args, cfg, device, which=('ours', 'ref')):
        from mmengine.structures import PixelData
        from mmseg.registry import MODELS
        from mmseg.structures import SegDataSample
        self.args, self.device = args, device
        torch.manual_seed(args.seed)
        self.model = MODELS.build(cfg.model).to(device)
        g = torch.Generator().manual_seed(args.seed + 1)
        h, w = args.img_size * 3 // 4, args.img_size  # not square: SAM's resize and crop run
        self.images = [torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8).to(device)
                       for _ in range(args.batch)]
        e = args.expressions
        order = torch.randperm(len(EVF_EXPRESSIONS), generator=g).tolist()
        self.expressions = [[EVF_EXPRESSIONS[order[(b * e + j) % len(order)]] for j in range(e)]
                            for b in range(args.batch)]
        self.samples = []
        for b in range(args.batch):
            gt = torch.zeros(e, h, w, dtype=torch.long)
            for j in range(e):  # a box per expression
                y0, x0 = int(torch.randint(0, h // 2, (1,), generator=g)), int(
                    torch.randint(0, w // 2, (1,), generator=g))
                gt[j, y0:y0 + h // 3, x0:x0 + w // 3] = 1
            ds = SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w),
                                             img_path=f'bench_{b}.png',
                                             expressions=self.expressions[b]))
            ds.gt_sem_seg = PixelData(data=gt.to(device))
            self.samples.append(ds)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(params, lr=1e-6)

    # inference -----------------------------------------------------------------------
    @torch.no_grad()
    def ours_infer(self):
        """All expressions of image 0 in one call."""
        self.model.eval()
        return self.model.predict_logits(self.images[:1], self.expressions[:1])[0][0]

    @torch.no_grad()
    def ref_infer(self):
        """One call per expression of image 0 (the image encoded again each time)."""
        self.model.eval()
        return torch.cat([self.model.predict_logits(self.images[:1], [[t]])[0][0]
                          for t in self.expressions[0]])

    # training ------------------------------------------------------------------------
    def _train_step(self, with_cp):
        model = self.model
        model.train()
        model.fusion_encoder.with_cp = with_cp
        losses = model.loss(self.images, self.samples)
        sum(losses.values()).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def ours_train_step(self):
        self._train_step(True)

    def ref_train_step(self):
        self._train_step(False)


def check_evf_equivalence(sides, args):
    """Assert in fp32 that one call with all expressions gives the masks of one call each, and
    that a training step's losses are the same with and without checkpointing."""
    model = sides.model
    ours, ref = sides.ours_infer(), sides.ref_infer()
    scale = ref.abs().max().item()
    diff = (ours - ref).abs().max().item()
    agree = ((ours > 0) == (ref > 0)).float().mean().item()
    model.train()
    losses = []
    for with_cp in (True, False):
        model.fusion_encoder.with_cp = with_cp
        got = model.loss(sides.images[:1], sides.samples[:1])
        losses.append(sum(v.item() for v in got.values()))
        model.zero_grad(set_to_none=True)
    loss_diff = abs(losses[0] - losses[1]) / max(abs(losses[1]), 1e-6)
    result = dict(samples=len(sides.expressions[0]), rel_logit_diff=diff / max(scale, 1e-12),
                  max_abs_logit=scale, mask_agreement=agree, max_rel_loss_diff=loss_diff,
                  tolerance=args.check_tol, loss_tolerance=args.check_tol / 10)
    result['passed'] = bool(result['rel_logit_diff'] <= args.check_tol
                            and loss_diff <= result['loss_tolerance'])
    if not result['passed']:
        raise AssertionError(f'one call with all expressions and one call each do not give the '
                             f'same masks (or checkpointing changes the loss): {result}')
    return result


def evf_main(args, log):
    """--method evf_sam: its rows (see the module docstring), or one memory worker."""
    import tempfile
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device here')
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_evf_config(args, evf_tokenizer_file(tmp))
        if args.worker:
            run_worker(args, cfg, device)
            return 0
        started = datetime.datetime.now(datetime.timezone.utc)
        load_before = load_average()
        vm, fe = cfg.model.visual_model, cfg.model.fusion_encoder
        e = args.expressions
        result = dict(method='evf_sam', device=describe_device(device), rows=[], notes=[],
                      config=osp.relpath(osp.abspath(args.config), REPO), arch=vm.arch,
                      beit3_arch=fe.arch, img_size=args.img_size, batch=args.batch,
                      expressions_per_image=e, warmup=args.warmup, repeats=args.repeats,
                      command='python tools/benchmark.py ' + ' '.join(args.argv),
                      date=started.isoformat(timespec='seconds'), load_average_before=load_before,
                      **memory_description(args, device))
        log('building EVF-SAM (random weights) ...')
        sides = EVFSides(args, cfg, device)
        log('checking that one call with all expressions equals one call each ...')
        result['equivalence'] = check_evf_equivalence(sides, args)
        log(f'  equivalence: {result["equivalence"]}')
        if 'multi_expression' in args.rows:
            log(f'inference, {e} expressions of one image ...')
            t = interleaved(dict(ours=sides.ours_infer, ref=sides.ref_infer), args.warmup,
                            args.repeats, device, log)
            result['rows'].append(timed_row(
                f'inference, {e} expressions of one image: one call vs one call each', t,
                's/image', 1,
                'ours: one SAM image encoding, the expressions through BEiT-3 and the mask decoder '
                'as one padded batch; reference: one call per expression (the official inference '
                'path: SAM image encoder, BEiT-3 and decoder each time)'))
        if 'train' in args.rows:
            log('training step, BEiT-3 checkpointing on vs off ...')
            t = interleaved(dict(ours=sides.ours_train_step, ref=sides.ref_train_step),
                            args.warmup, args.repeats, device, log)
            result['rows'].append(timed_row(
                f'training step (batch {args.batch}, {e} expr./image): BEiT-3 with_cp on vs off',
                t, 'images/s', args.batch,
                'the price of checkpointing: each BEiT-3 layer runs again in the backward pass'))
        del sides
        _release_free_memory()
        if 'train_memory' in args.rows:
            result['rows'].append(memory_row(
                args, cfg, device, log, 'train_memory',
                f'training step peak memory (batch {args.batch}, {e} expr./image): BEiT-3 '
                'with_cp on vs off'))
        return write_result(result, args, started, load_before)


# ------------------------------------------------------------------------------- main
def bound_of(oom):
    """What an out-of-memory side makes of a memory row's ratio: its value is a lower bound, so
    the ratio (reference / ours) is at least ('>=') or at most ('<=') the printed one."""
    if oom == {'ref'}:
        return '>='
    if oom == {'ours'}:
        return '<='
    return 'unknown'  # both ran out: no ratio can be told


def out_of_memory_note(oom, device):
    names = ' and '.join({'ours': 'ours', 'ref': 'the reference'}[s] for s in sorted(oom))
    how = ('refused by the CUDA allocator' if device.type == 'cuda' else
           'killed by SIGKILL, as the kernel\'s OOM killer does, or refused by the allocator')
    return (f'{names} ran out of memory ({how}): the value is the growth measured when it '
            'stopped, a lower bound of its peak')


def print_table(rows):
    """The rows as a table; 'ratio' from wall time (or memory), 'CPU ratio' from process CPU time."""
    head = (f'{"row":<64} {"ours":>11} {"reference":>11}  {"unit":<9} {"ratio":>6} '
            f'{"CPU ratio":>9}')
    print(head)
    print('-' * len(head))

    def fmt(v, width, spec):
        return f'{v:{width}{spec}}' if v is not None else f'{"-":>{width}}'

    for r in rows:
        bound = {'>=': '>', '<=': '<', 'unknown': '?'}.get(r.get('bound'), ' ')
        print(f'{r["name"][:64]:<64} {fmt(r["ours"], 11, ".4g")} {fmt(r["reference"], 11, ".4g")}  '
              f'{r["unit"]:<9}{bound}{fmt(r["ratio"], 6, ".2f")} {fmt(r.get("cpu_ratio"), 9, ".2f")}')


def setup(args):
    """Resolve the device-dependent options (threads, dtype, attention) and load the config."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device here')
    args.autocast_dtype = resolve_dtype(args, device)
    args.fused = resolve_fused(args, device)
    cfg = load_config(args)
    args.with_cp = resolve_cp(args, device, cfg.model.backbone.get('arch', 'vit_b'))
    return device, cfg


def memory_row(args, cfg, device, log, row, label):
    """A peak-memory row: each side in fresh subprocesses (or inline), plus on the CPU the
    profiler's tensor-allocation peak; out-of-memory sides give bounds."""
    log(f'{row} (fresh subprocess per side) ...')
    ours_mib, ref_mib, peaks, oom = memory_in_subprocesses(args, row, log, '', cfg, device)
    samples = dict(ours_mib=peaks['ours'], reference_mib=peaks['ref'])
    notes = [out_of_memory_note(oom, device)] if oom else []
    t_oom = set()
    if device.type == 'cpu' and args.tensor_memory:
        if oom:  # the profiler's run would die the same way, for no new number
            notes.append('tensor-allocation peak not measured (a side ran out of memory)')
        else:
            t_ours, t_ref, t_peaks, t_oom = memory_in_subprocesses(args, row, log, ':tensors',
                                                                   cfg, device)
            samples.update(ours_tensor_mib=t_peaks['ours'], reference_tensor_mib=t_peaks['ref'])
            notes.append(f'torch.profiler tensor-allocation peak: ours {t_ours:.0f} MiB, '
                         f'reference {"at least " if "ref" in t_oom else ""}{t_ref:.0f} MiB '
                         f'(ratio {ratio_of(t_ours, t_ref, "MiB"):.2f})')
    row_ = make_row(label, ours_mib, ref_mib, 'MiB', samples, '; '.join(notes) or None)
    if oom:
        row_['bound'] = bound_of(oom)
    if device.type == 'cpu' and args.tensor_memory and not oom:
        row_.update(ours_tensor_mib=t_ours, reference_tensor_mib=t_ref,
                    tensor_ratio=ratio_of(t_ours, t_ref, 'MiB'))
        if t_oom:
            row_['tensor_bound'] = bound_of(t_oom)
    return row_


def memory_description(args, device):
    """How the memory rows were measured, for the JSON."""
    return dict(
        memory_method=('torch.cuda.max_memory_allocated above the allocation before the step'
                       if device.type == 'cuda' else
                       'growth of peak RSS (VmHWM reset via /proc/self/clear_refs) above the RSS '
                       'before the step'),
        memory_isolation=('each side in its own fresh subprocess'
                          if args.memory_isolation == 'subprocess' else
                          'inline: both sides in this process, one after the other'))


def log_stderr(msg):
    print(msg, file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.method == 'evf_sam':
        return evf_main(args, log_stderr)
    device, cfg = setup(args)
    if args.worker:
        run_worker(args, cfg, device)
        return 0
    log = log_stderr
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = load_average()
    result = dict(device=describe_device(device), rows=[], notes=[],
                  config=osp.relpath(osp.abspath(args.config), REPO),
                  arch=args.arch or cfg.model.backbone.get('arch', 'vit_b'),
                  img_size=args.img_size, batch=args.batch,
                  classes_per_image=args.classes_per_image, points_per_class=args.points,
                  ours_trunk_dtype=args.autocast_dtype or 'float32',
                  ours_decoder_dtype=decoder_dtype(args) or 'float32', reference_dtype='float32',
                  loss_size=(cfg.model.decode_head.get('loss_size', 'input')
                             if args.loss_size == 'config' else args.loss_size),
                  fast_paths=dict(fused_attn=args.fused, with_cp=args.with_cp, compile=args.compile,
                                  class_batch=args.class_batch,
                                  infer_class_chunk=args.infer_class_chunk,
                                  autocast=args.autocast_dtype or 'off'),
                  warmup=args.warmup, repeats=args.repeats,
                  command='python tools/benchmark.py ' + ' '.join(args.argv),
                  date=started.isoformat(timespec='seconds'), load_average_before=load_before,
                  **memory_description(args, device), method=args.method)
    if args.method == 'clip_guided_sam':
        g = cfg.model.guide
        result['clip'] = dict(model_name=g.model_name, clip_size=g.clip_size,
                              surgery_blocks=g.get('surgery_blocks', 6), norm=g.get('norm', 'tokens'),
                              finetune_attn_blocks=g.get('finetune_attn_blocks', 0), dtype='float32')
    rows = args.rows
    # The equivalence check always runs, whatever rows are asked for.
    log('building ours and the reference ...')
    sides = make_sides(args, cfg, device)
    log('checking that ours (fp32 trunk) and the reference give the same masks and losses ...')
    result['equivalence'] = (check_cgs_equivalence if args.method == 'clip_guided_sam'
                             else check_equivalence)(sides, args)
    log(f'  equivalence: {result["equivalence"]}')
    k = args.classes_per_image
    if args.method == 'clip_guided_sam':
        cgs_timed_rows(sides, args, device, log, result)
        timed = ()
    else:
        timed = (  # row, what is logged, its two sides, its name, unit, items per call
            ('train', 'training step', sides.ours_train_step, sides.ref_train_step,
             f'training step (batch {args.batch}, K={k} classes/image)', 'images/s', args.batch),
            ('infer_image', 'inference per image', sides.ours_infer, sides.ref_infer,
             f'inference per image ({k} class prompts, {args.points} point(s) each)', 's/image',
             args.batch),
            ('infer_prompt', 'inference per prompt', functools.partial(sides.ours_infer, single=True),
             functools.partial(sides.ref_infer, single=True),
             f'inference per prompt (one image, one class + {args.points} point(s), alone)', 's/prompt',
             1))
    for row, what, ours_fn, ref_fn, name, unit, per in timed:
        if row in rows:
            log(f'{what} ...')
            t = interleaved(dict(ours=ours_fn, ref=ref_fn), args.warmup, args.repeats, device, log)
            result['rows'].append(timed_row(name, t, unit, per))
    del sides
    _release_free_memory()
    for row, label in (
            ('train_memory', f'training step peak memory (batch {args.batch}, K={k})'),
            ('infer_memory', f'inference peak memory ({args.batch} image(s), {k} class prompts each)')):
        if row not in rows:
            continue
        result['rows'].append(memory_row(args, cfg, device, log, row, label))
    if 'text150' in rows:
        log('text-only inference over the vocabulary ...')
        row, note = text150_row(args, cfg, device, log)
        if row is not None:
            result['rows'].append(row)
        else:
            result['notes'].append(note)
    if 'cache' in rows:
        log('cached epochs (decoder-only / prompt tuning) against re-encoding ...')
        got, notes = cache_rows(args, cfg, device, log)
        result['rows'].extend(got)
        result['notes'].extend(notes)
    return write_result(result, args, started, load_before)


def write_result(result, args, started, load_before):
    """Finish the result (load, seconds), print the table and write --json / --plot."""
    result['load_average_after'] = load_average()
    result['seconds'] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    print_table(result['rows'])
    for note in result['notes']:
        print(f'note: {note}')
    eq = result['equivalence']
    print(f'equivalence (fp32): rel. logit diff {eq["rel_logit_diff"]:.2e}, mask agreement '
          f'{eq["mask_agreement"]:.4f}, rel. loss diff {eq["max_rel_loss_diff"]:.2e}; '
          f'device: {result["device"]}; load {load_before} -> {result["load_average_after"]}')
    from mmsamptx.utils.io import atomic_write
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with atomic_write(args.json) as f:
            f.write(json.dumps(result, indent=2).encode())
        print(f'wrote {args.json}')
    if args.plot:
        print(f'wrote {plot_ratios(result, args.plot)}')
    return 0


def plot_ratios(result, out_png):
    """A horizontal bar per row: its wall-clock ratio (above 1: ours better), with the 1x line."""
    import io

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmsamptx.utils.io import atomic_write
    rows = result['rows']
    names = [r['name'] if len(r['name']) <= 60 else r['name'][:57] + '...' for r in rows]
    ratios = [r['ratio'] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.4))
    colours = ['tab:green' if x >= 1 else 'tab:red' for x in ratios]
    ax.barh(range(len(rows)), ratios, color=colours)
    ax.axvline(1.0, color='black', linewidth=1)
    for i, (x, r) in enumerate(zip(ratios, rows)):
        bound = {'>=': '≥ ', '<=': '≤ ', 'unknown': '? '}.get(r.get('bound'), '')
        ax.text(x, i, f' {bound}{x:.2f}x', va='center')
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel('ours vs reference (above 1: ours better)')
    ax.set_xlim(0, max(ratios + [1.0]) * 1.25)
    k = result.get('classes_per_image', result.get('expressions_per_image'))
    ax.set_title(f"{result['arch']} {result['img_size']}px, K={k}: "
                 f"{result['device'][:70]}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=100)
    plt.close(fig)
    os.makedirs(osp.dirname(osp.abspath(out_png)), exist_ok=True)
    with atomic_write(out_png) as f:
        f.write(buf.getvalue())
    return out_png


if __name__ == '__main__':
    sys.exit(main())
