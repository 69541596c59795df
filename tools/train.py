# Train a segmentor: mmsegmentation 1.2.2's tools/train.py, flag for flag, plus mmsamptx's setup.
import argparse
import logging
import os
import os.path as osp
import sys

from mmengine.config import DictAction
from mmengine.logging import print_log


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        action='store_true',
        default=False,
        help='resume from the latest checkpoint in the work_dir automatically')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--bad-data',
        choices=['stop', 'skip'],
        default=None,
        help='wrap the training dataset in SkipBadSamples: a corrupt image or mask stops the '
        'run naming the file, or is skipped and counted in the log (docs/training.md)')
    parser.add_argument(
        '--nonfinite-loss',
        choices=['stop', 'skip'],
        default=None,
        help="NonFiniteLossHook's action for a NaN/Inf loss: stop with an error naming the "
        'iteration and the term, or skip the optimizer step (docs/training.md)')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help="start from a load_from checkpoint whose keys differ from the model's (what it "
        'lacks keeps its init_weights() value); by default the checkpoint must fit exactly')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch / torchrun pass `--local-rank` (torch >= 2.0)
    # or `--local_rank` (older); accept both.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def read_start_checkpoint(cfg):
    """(path, checkpoint) that training will load (load_from, or with --resume the work
    dir's last checkpoint), read now so that a missing, truncated or non-checkpoint file is
    one line before anything is built; None when training starts from init_weights()."""
    from mmengine.runner import find_latest_checkpoint
    from mmsamptx.apis.checkpoint import read_checkpoint
    path = cfg.get('load_from')
    if cfg.get('resume') and path is None:
        path = find_latest_checkpoint(cfg.work_dir)
    if not path or '://' in str(path):
        return None
    return path, read_checkpoint(path)


def check_start_checkpoint(runner, start, args):
    """Refuse, as one line, a start checkpoint whose keys do not fit the built model
    (mmengine's load_from and resume load non-strictly) unless --allow-partial."""
    if start is None:
        return
    from mmengine.model import is_model_wrapper
    from mmsamptx.apis.checkpoint import check_state_dict, state_dict_of
    path, ckpt = start
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    check_state_dict(model, state_dict_of(ckpt, path), path, ckpt, args.allow_partial,
                     osp.splitext(osp.basename(args.config))[0])


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'error: config file not found: {args.config}', file=sys.stderr)
        return 2

    # Register the project's components and make resume work under
    # torch.load(weights_only=True) before any config or checkpoint is read.
    import mmsamptx  # noqa: F401
    import mmsamptx.engine as engine
    engine.register_safe_globals()

    from mmsamptx.apis.user_errors import USER_ERRORS, report_user_error
    try:
        return _train(args)
    except USER_ERRORS as e:  # a bad checkpoint, data root or config: one line
        return report_user_error(e)
    except engine.CheckpointSecurityError as e:  # the start checkpoint asks for code
        print(f'error: {e}', file=sys.stderr)
        return 1


def _train(args):
    import mmsamptx.engine as engine
    from mmsamptx.apis.user_errors import check_data_roots

    cfg = engine.load_config(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    # enable automatic-mixed-precision training
    if args.amp is True:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print_log(
                'AMP training is already enabled in your config.',
                logger='current',
                level=logging.WARNING)
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '`--amp` is only supported when the optimizer wrapper type is '
                f'`OptimWrapper` but got {optim_wrapper}.')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'

    # resume training (plain flag: the work_dir's last_checkpoint, as mmseg)
    cfg.resume = args.resume

    if args.bad_data is not None:
        engine.configure_bad_data(cfg, args.bad_data)
    if args.nonfinite_loss is not None:
        engine.configure_nonfinite(cfg, args.nonfinite_loss)

    engine.upgrade_checkpoint_hook(cfg)
    check_data_roots(cfg, ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else []),
                     args.config)
    start = read_start_checkpoint(cfg)
    try:
        engine.adapt_to_device(cfg, args.launcher)
    except RuntimeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2

    # the predicted peak memory of a training step and whether it fits (tools/estimate_memory.py)
    from mmsamptx.apis.memory import log_training_memory
    log_training_memory(cfg, args.config)
    clean = False
    try:
        with engine.unknown_type_hint(args.config):
            runner = engine.build_runner(cfg)
            check_start_checkpoint(runner, start, args)
            start = None  # mmengine reads the file again when it loads it
            runner.train()
        clean = True
    except engine.BadSampleError as e:
        print(f'error: {engine.BadSampleError.summary(e)}', file=sys.stderr)
        return 1
    except (engine.CheckpointSecurityError, engine.NonFiniteLossError,
            engine.NonFiniteModelError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    finally:
        engine.close_process_group(clean)
    return 0


if __name__ == '__main__':
    sys.exit(main())
