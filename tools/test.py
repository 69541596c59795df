# Test (and evaluate) a segmentor: mmsegmentation 1.2.2's tools/test.py, flag for flag,
# plus mmsamptx's setup.
import argparse
import numbers
import os
import os.path as osp
import sys

from mmengine.config import DictAction


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='MMSeg test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none' to test the model's own "
                        'initial weights (official SAM / CLIP files; training-free baselines)')
    parser.add_argument(
        '--work-dir',
        help=('if specified, the evaluation metric results will be dumped'
              'into the directory as json'))
    parser.add_argument(
        '--out',
        type=str,
        help='The directory to save output prediction for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
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
    parser.add_argument('--tta', action='store_true', help='Test time augmentation')
    parser.add_argument(
        '--allow-partial',
        action='store_true',
        help="load a checkpoint whose keys differ from the model's (what it lacks comes from "
        'init_weights(), the official files); by default the checkpoint must fit exactly')
    # torch.distributed.launch / torchrun pass `--local-rank` (torch >= 2.0)
    # or `--local_rank` (older); accept both.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args):
    default_hooks = cfg.default_hooks
    if 'visualization' in default_hooks:
        visualization_hook = default_hooks['visualization']
        # Turn on visualization
        visualization_hook['draw'] = True
        if args.show:
            visualization_hook['show'] = True
            visualization_hook['wait_time'] = args.wait_time
        if args.show_dir:
            visualizer = cfg.visualizer
            visualizer['save_dir'] = args.show_dir
    else:
        raise RuntimeError(
            'VisualizationHook must be included in default_hooks.'
            'refer to usage '
            '"visualization=dict(type=\'VisualizationHook\')"')

    return cfg


def _evaluators(cfg_evaluator):
    if isinstance(cfg_evaluator, (list, tuple)):
        return list(cfg_evaluator)
    if isinstance(cfg_evaluator, dict) and 'metrics' in cfg_evaluator \
            and 'type' not in cfg_evaluator:
        metrics = cfg_evaluator['metrics']
        return list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
    return [cfg_evaluator]


def main(argv=None):
    args = parse_args(argv)
    if not osp.isfile(args.config):
        print(f'error: config file not found: {args.config}', file=sys.stderr)
        return 2
    training_free = args.checkpoint.lower() == 'none'
    if not training_free and '://' not in args.checkpoint and \
            not osp.isfile(osp.expanduser(args.checkpoint)):
        print(f'error: checkpoint file not found: {args.checkpoint}', file=sys.stderr)
        return 2

    import mmsamptx  # noqa: F401  (registers the project's components)
    import mmsamptx.engine as engine
    from mmsamptx.apis.user_errors import USER_ERRORS, report_user_error
    engine.register_safe_globals()
    try:
        return _test(args, training_free)
    except USER_ERRORS as e:  # a bad checkpoint, data root, image or config: one line
        return report_user_error(e)


def _test(args, training_free):
    import mmsamptx.engine as engine
    from mmsamptx.apis.checkpoint import load_trained_checkpoint
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

    # test.py loads the checkpoint itself, strictly (mmengine's load_from is not strict) and
    # full or adapter-only, through the one loader the API and tools/infer.py use
    cfg.load_from = None
    check_data_roots(cfg, ['test_dataloader'], args.config)

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model

    # add output_dir in metric: the metrics write the predictions there
    if args.out is not None:
        for evaluator in _evaluators(cfg.test_evaluator):
            evaluator['output_dir'] = args.out
            evaluator['keep_results'] = True

    try:
        engine.adapt_to_device(cfg, args.launcher)
    except RuntimeError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2

    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper
    clean = False
    try:
        with engine.unknown_type_hint(args.config):
            runner = engine.build_runner(cfg)
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            if training_free:  # what training would start from: init_weights() loads the official files
                model.init_weights()
            else:
                load_trained_checkpoint(model, args.checkpoint, args.allow_partial,
                                        config_name=osp.splitext(osp.basename(args.config))[0])
            metrics = runner.test()
        clean = True
        main_process = is_main_process()  # while the process group still exists
    except engine.CheckpointSecurityError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    finally:
        engine.close_process_group(clean)

    if main_process:
        summary = '  '.join(
            f'{k}: {float(v):.4f}' if isinstance(v, numbers.Real) else f'{k}: {v}'
            for k, v in (metrics or {}).items())
        print(f'Test metrics: {summary}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
