"""How much memory one training step of a config needs, before training, and whether it fits.

The estimate is *measured*, not computed from formulas: the config's model and
optimiser are built (random weights: their values do not change the memory),
and training steps on generated batches of the config's input size and
per-image composition (K classes per image, or one (image, class) pair per item)
are run under :func:`measure_peak`:

* a batch of at most 2 images: that step itself, at full size (``'measured'``);
* larger batches: a short probe at 1 and 2 images per step, scaled linearly to
  the configured batch (``'probed'``). The first (cold) 1-image step carries the
  one-off costs (the optimiser's state, the class embeddings, allocator
  warm-up); the growth per image is the difference of two warm steps of 2 and 1
  images: ``peak(B) = cold(1) + (B - 1) * (warm(2) - warm(1))``. Every
  per-image cost of a step (activations, the losses) grows linearly with the
  images of the batch, since the samples of a batch run as one batch.

The peak of a step is what :func:`measure_peak` reports (the CUDA allocator's
peak, or on the CPU the growth of the process's peak resident set size, the
glibc heap included), above the built model. The total adds the model's
parameters and buffers; it is compared with the device's free memory (CUDA) or
the machine's available memory (``MemAvailable``). Data-loader workers and, on
CUDA, the context are not counted.
"""
import contextlib
import copy
import ctypes
import gc
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional

import numpy as np
import torch

MIB = 1024.0 * 1024.0

__all__ = ['MemoryEstimate', 'estimate_training_memory', 'estimate_and_measure',
           'log_training_memory', 'measure_peak', 'StepOutOfMemory', 'is_out_of_memory',
           'release_free_memory', 'available_memory_mib', 'ESTIMATE_ENV']
#: set to 0 to make tools/train.py skip its start-of-training estimate
ESTIMATE_ENV = 'MMSAMPTX_MEMORY_ESTIMATE'


# ----------------------------------------------------------------------- measuring
def _proc_status_mib(key: str) -> float:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f'{key} not in /proc/self/status')


def release_free_memory() -> None:
    """Collect garbage and hand glibc's free heap pages back to the system."""
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


class StepOutOfMemory(Exception):
    """A measured step ran out of memory; ``bound_mib`` is what it had taken when it failed."""

    def __init__(self, bound_mib):
        super().__init__(f'out of memory after {bound_mib:.1f} MiB')
        self.bound_mib = bound_mib


def is_out_of_memory(error: BaseException) -> bool:
    """An allocator's refusal: CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError)
        and ('DefaultCPUAllocator' in text or "can't allocate memory" in text))


def measure_peak(fn: Callable[[], object], device: torch.device,
                 report: Optional[Callable[[float], None]] = None, interval: float = 0.1) -> float:
    """MiB above the memory in use before fn: CUDA allocator peak, or CPU peak RSS growth.

    On the CPU, ``report(growth_so_far)`` is called every ``interval`` s while fn runs, so that a
    parent learns a measured lower bound even if the kernel kills this process for memory. An
    allocator's refusal raises :class:`StepOutOfMemory` with the growth reached.
    """
    release_free_memory()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)

        def so_far():
            return (torch.cuda.max_memory_allocated(device) - base) / MIB
    else:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # resets VmHWM to the current VmRSS (Linux >= 4.0)
        base = _proc_status_mib('VmRSS')

        def so_far():
            return _proc_status_mib('VmHWM') - base
    stop = threading.Event()
    if report is not None and device.type == 'cpu':
        def watch():
            while not stop.wait(interval):
                report(so_far())
        threading.Thread(target=watch, daemon=True).start()
    try:
        fn()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return so_far()
    except Exception as e:  # noqa: BLE001 (only an allocator's refusal is turned into a bound)
        if is_out_of_memory(e):
            raise StepOutOfMemory(so_far()) from e
        raise
    finally:
        stop.set()


def available_memory_mib(device: torch.device) -> float:
    """Free CUDA memory of ``device``, or the machine's ``MemAvailable``, in MiB."""
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0] / MIB
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith('MemAvailable:'):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError('MemAvailable not in /proc/meminfo')


# ------------------------------------------------------------------------ estimate
@dataclass
class MemoryEstimate:
    """A training step's predicted peak, in MiB, and whether it fits ``device``."""
    config: str
    device: str
    method: str          # 'measured' (the full step) or 'probed' (1 and 2 images, scaled)
    batch_size: int      # images per step (per process)
    samples_per_image: str
    model_mib: float     # parameters and buffers
    step_mib: float      # peak of one training step above the built model
    available_mib: float
    probes: List[dict] = field(default_factory=list)  # dict(images, warm, peak_mib)

    @property
    def total_mib(self) -> float:
        return self.model_mib + self.step_mib

    @property
    def fits(self) -> bool:
        return self.total_mib <= self.available_mib

    def line(self) -> str:
        """The one line tools/estimate_memory.py and tools/train.py print."""
        if self.method == 'measured':
            how = f'measured: one training step of {self.batch_size} image(s)'
        else:
            how = (f'probed: steps of 1 and 2 images, scaled linearly to {self.batch_size} images')
        where = 'free on' if self.device.startswith('cuda') else 'available on'
        verdict = 'fits' if self.fits else (
            'does NOT fit: lower train_dataloader.batch_size, or checkpoint more blocks '
            '(model.backbone.with_cp=True)')
        return (f'Training memory ({how}, {self.samples_per_image} per image): '
                f'model {self.model_mib:,.0f} MiB + step peak {self.step_mib:,.0f} MiB = '
                f'{self.total_mib:,.0f} MiB; {self.available_mib:,.0f} MiB {where} '
                f'{self.device}: {verdict}')

    def to_dict(self) -> dict:
        return dict(asdict(self), total_mib=self.total_mib, fits=self.fits, line=self.line())


@contextlib.contextmanager
def _quiet():
    """Silence the probe's build logs (e.g. one line per frozen parameter from the optimiser
    constructor) and the warnings of modules run at random weights on purpose."""
    import logging
    import warnings

    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _rng_kept():
    """Leave python's, numpy's and torch's (CPU and CUDA) random states as they were."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())
                               if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def _dataset_types(cfg) -> List[str]:
    """The ``type`` of the training dataset and of every dataset it wraps."""
    types, ds = [], cfg.get('train_dataloader', {}).get('dataset')
    while isinstance(ds, dict):
        types.append(str(ds.get('type')))
        ds = ds.get('dataset')
    return types


def _input_size(cfg, model) -> tuple:
    size = cfg.model.get('data_preprocessor', {}).get('size')
    if size is None:
        side = getattr(model.decode_head, 'image_size', None)
        if side is None:
            raise ValueError('model.data_preprocessor.size is not set: the training input size '
                             'is unknown')
        size = (side, side)
    return tuple(int(s) for s in size)


class _BatchMaker:
    """Generated training batches of a :class:`ClassPromptedSAM` config's composition."""

    def __init__(self, cfg, model):
        self.size = _input_size(cfg, model)
        self.pairs = 'ClassPairDataset' in _dataset_types(cfg)
        tcfg = model.train_cfg
        num_classes = len(model.class_names)
        allowed = tcfg.get('target_classes')
        candidates = list(range(num_classes)) if allowed is None else [int(c) for c in allowed]
        if tcfg['num_points'] == 0:
            candidates = model.target_classes(tcfg)
        k = 1 if self.pairs else min(int(tcfg['classes_per_image']), len(candidates))
        self.classes = candidates[:k]
        self.text_key = model.text_key
        negatives = 0 if self.pairs else int(tcfg.get('negatives_per_image', 0))
        self.describe = ('1 (image, class) pair' if self.pairs else
                         f'{k} class(es)' + (f' + {negatives} absent' if negatives else ''))

    def __call__(self, images: int, generator: torch.Generator) -> dict:
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        h, w = self.size
        inputs, samples = [], []
        # the classes as vertical bands, each wide enough to hold points on the decoder's grid
        bands = torch.linspace(0, len(self.classes), w).long().clamp(max=len(self.classes) - 1)
        gt = torch.tensor(self.classes)[bands][None].expand(h, w).contiguous()
        for _ in range(images):
            inputs.append(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator))
            meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), flip=False,
                        img_path='generated.png', seg_map_path='generated.png')
            if self.pairs:
                meta['sample_class'] = self.classes[0]
            if self.text_key is not None:
                meta[self.text_key] = 'object'
            ds = SegDataSample(metainfo=meta)
            ds.gt_sem_seg = PixelData(data=gt[None].clone())
            samples.append(ds)
        return dict(inputs=inputs, data_samples=samples)


def _without_disk_caches(cfg):
    """``cfg`` with every ``cache_dir`` set to None: the probe's random-weight text
    embeddings must not be written where training would look for them."""
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            if key == 'cache_dir':
                cfg[key] = None
            else:
                _without_disk_caches(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _without_disk_caches(value)
    return cfg


def _model_mib(model) -> float:
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / MIB


def estimate_training_memory(cfg, device: Optional[str] = None, measure: bool = False,
                             config_name: str = '') -> MemoryEstimate:
    """Predict the peak memory of one training step of ``cfg`` (an mmengine ``Config``).

    Args:
        cfg: the training config (cfg-options already merged). Not modified.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'``; default: CUDA if available.
        measure: run the full-size step instead of probing (what the probe is checked
            against; slower and as large as the step itself).
        config_name: the config's name in the report.

    The random states of python, numpy and torch are left as they were.
    """
    import mmsamptx  # noqa: F401  (registers the components)
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    cfg = copy.deepcopy(cfg)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    if cfg.model.get('type') != 'ClassPromptedSAM':  # refused before building a large model
        raise ValueError(f'the memory estimate generates batches for ClassPromptedSAM; '
                         f'model.type={cfg.model.get("type")} is not supported yet')
    dev = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    batch = int(cfg.train_dataloader.get('batch_size', 1))
    model_cfg = _without_disk_caches(cfg.model)
    if model_cfg.get('embedding_cache') is not None:
        model_cfg.embedding_cache = None  # the first epoch fills a cache: it runs the encoder
    with _rng_kept(), _quiet():
        model = MODELS.build(model_cfg).to(dev).train()
        maker = _BatchMaker(cfg, model)
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        generator = torch.Generator().manual_seed(0)

        def step(images: int, warm: bool) -> float:
            data = maker(images, generator)
            if warm:  # a step that allocates its gradients and optimiser state again
                optim_wrapper.zero_grad()
                optim_wrapper.optimizer.state.clear()
            peak = measure_peak(lambda: model.train_step(data, optim_wrapper), dev)
            probes.append(dict(images=images, warm=warm, peak_mib=peak))
            return peak

        probes: List[dict] = []
        if measure or batch <= 2:
            method, step_mib = 'measured', step(batch, warm=False)
        else:
            cold = step(1, warm=False)
            per_image = max(0.0, step(2, warm=True) - step(1, warm=True))
            method, step_mib = 'probed', cold + (batch - 1) * per_image
        model_mib = _model_mib(model)
        del model, optim_wrapper
        release_free_memory()
        if dev.type == 'cuda':
            torch.cuda.empty_cache()
    return MemoryEstimate(config=config_name, device=str(dev), method=method, batch_size=batch,
                          samples_per_image=maker.describe, model_mib=model_mib,
                          step_mib=step_mib, available_mib=available_memory_mib(dev),
                          probes=probes)


def _in_child(conn, cfg, device, measure, config_name):
    try:
        conn.send(('ok', estimate_training_memory(cfg, device, measure, config_name).to_dict()))
    except BaseException as e:  # noqa: BLE001 (sent to the parent, which raises it)
        conn.send(('error', f'{type(e).__name__}: {e}'))
    finally:
        conn.close()


def estimate_and_measure(cfg, device: Optional[str] = None, config_name: str = '') -> tuple:
    """The estimate and the full-size step's measured peak, each in a fresh forked process.

    Returns (estimate dict, measured dict) as :meth:`MemoryEstimate.to_dict` gives them.
    Neither child inherits the other's allocator state; the parent runs no step.
    """
    import multiprocessing as mp
    # fork shares the imports; a CUDA parent must spawn (CUDA does not survive a fork)
    ctx = mp.get_context('fork' if (device or 'cpu').startswith('cpu') and
                         not torch.cuda.is_available() else 'spawn')
    results = []
    for measure in (False, True):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_in_child, args=(child, cfg, device, measure, config_name))
        proc.start()
        child.close()
        try:
            status, value = parent.recv()
        except EOFError:
            proc.join()
            raise RuntimeError(f'the {"measured step" if measure else "estimate"} process died '
                               f'(exit {proc.exitcode}; -9: killed, e.g. out of memory)') from None
        proc.join()
        if status != 'ok':
            raise RuntimeError(f'the {"measured step" if measure else "estimate"} failed: {value}')
        results.append(value)
    return tuple(results)


def log_training_memory(cfg, config_name: str = '') -> Optional[MemoryEstimate]:
    """tools/train.py's start line: the estimate, logged by the current mmengine logger.

    Runs on the first process only (``LOCAL_RANK`` 0), unless the environment sets
    ``MMSAMPTX_MEMORY_ESTIMATE=0``. An estimate that cannot be made (an unsupported
    segmentor; a probe step that runs out of memory or fails) is logged as a warning
    naming why, and training goes on: the estimate is advice, the training itself
    reports its own errors.
    """
    import logging
    import os

    from mmengine.logging import print_log
    if os.environ.get('LOCAL_RANK', '0') != '0' or os.environ.get(ESTIMATE_ENV, '1') == '0':
        return None
    try:
        est = estimate_training_memory(cfg, config_name=config_name)
    except Exception as e:  # noqa: BLE001 (advice only: the reason is logged, training goes on)
        print_log(f'Training memory: not estimated ({type(e).__name__}: {e})', logger='current',
                  level=logging.WARNING)
        return None
    print_log(est.line(), logger='current',
              level=logging.INFO if est.fits else logging.WARNING)
    return est
