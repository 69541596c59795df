"""tools/benchmark.py at the tiny arch: JSON schema, the ratio direction rule, the equivalence check.

No timing is asserted: the numbers of a 64 px tiny model on a shared CPU mean nothing.
"""
import importlib.util
import json
import math
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmark.py')
TINY = ['--arch', 'tiny', '--img-size', '64', '--repeats', '1', '--warmup', '0']


def load_tool():
    spec = importlib.util.spec_from_file_location('mmsamptx_benchmark_tool', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
    """One run of the tool, every row, as users call it: (JSON, stdout). Its memory rows run
    inline (the fresh-subprocess workers are checked on their own, in-process)."""
    out = tmp_path_factory.mktemp('bench') / 'bench.json'
    proc = subprocess.run([sys.executable, TOOL, *TINY, '--classes-per-image', '2',
                           '--text-classes', '24', '--memory-isolation', 'inline', '--json', str(out),
                           '--plot', str(out.with_suffix('.png'))],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), proc.stdout


def test_json_schema_and_every_row(bench):
    result, stdout = bench
    assert isinstance(result['device'], str) and result['device']
    names = [r['name'] for r in result['rows']]
    # train, 2 memory, 2 inference, text150 and (where the segmentor has an embedding cache) two
    # cache rows (against ours re-encoding and against the reference) for each of decoder-only
    # and prompt tuning
    assert len(names) in (6, 10) and len(set(names)) == len(names)
    for row in result['rows']:
        assert set(row) >= {'name', 'ours', 'reference', 'unit', 'ratio'}
        assert isinstance(row['name'], str) and isinstance(row['unit'], str)
        for key in ('ours', 'reference', 'ratio'):
            assert isinstance(row[key], float) and math.isfinite(row[key]), (row['name'], key)
        assert row['ours'] > 0 and row['reference'] > 0, row
        assert row['name'][:30] in stdout  # the printed table has every row
    units = {r['unit'] for r in result['rows']}
    assert units - {'s/epoch'} == {'images/s', 's/image', 's/prompt', 'MiB'}
    # the cache rows are there, or the JSON says why not
    cache_rows = [n for n in names if 'embedding cache' in n]
    assert len(cache_rows) == 4 or any('cache' in n for n in result['notes'])
    if cache_rows:
        assert sum(n.startswith('decoder-only') for n in cache_rows) == 2
        assert sum(n.startswith('prompt-tuning') for n in cache_rows) == 2


def test_ratio_chart_is_written(bench, tmp_path_factory):
    from PIL import Image
    result, stdout = bench
    png = re.search(r'wrote (\S+\.png)', stdout).group(1)
    with Image.open(png) as im:
        assert im.format == 'PNG' and im.size[1] > 100


def test_every_ratio_follows_the_direction_rule(bench):
    """A ratio above 1 means ours is better: throughput ours/reference, time and memory reference/ours."""
    for row in bench[0]['rows']:
        if row['unit'] == 'images/s':
            expected, better = row['ours'] / row['reference'], 'higher'
        else:
            expected, better = row['reference'] / row['ours'], 'lower'
        assert row['ratio'] == pytest.approx(expected, rel=1e-12), row
        assert row['better'] == better


def test_equivalence_check_passed_and_is_recorded(bench):
    eq = bench[0]['equivalence']
    assert eq['passed'] is True
    assert eq['rel_logit_diff'] <= eq['tolerance']
    assert eq['mask_agreement'] > 0.999
    assert eq['max_rel_loss_diff'] <= eq['loss_tolerance'] == eq['tolerance'] / 10


def test_rows_selector_and_ratio_rule_helper():
    tool = load_tool()
    assert tool.make_row('t', 2.0, 1.0, 'images/s')['ratio'] == 2.0
    assert tool.make_row('t', 1.0, 3.0, 's/image')['ratio'] == 3.0
    assert tool.make_row('t', 100.0, 400.0, 'MiB')['ratio'] == 4.0
    assert tool.parse_args(['--rows', 'train,text150']).rows == ['train', 'text150']
    with pytest.raises(SystemExit):
        tool.parse_args(['--rows', 'nonsense'])
    assert tool.parse_args(['--cache-variants', 'prompt']).cache_variants == ['prompt']
    with pytest.raises(SystemExit):
        tool.parse_args(['--cache-variants', 'decoder,adapters'])


def test_equivalence_check_catches_a_reference_that_differs():
    """The check is not vacuous: perturb one reference weight and it must refuse to measure."""
    tool = load_tool()
    args = tool.parse_args(TINY + ['--classes-per-image', '2', '--dtype', 'float32'])
    device, cfg = tool.setup(args)
    sides = tool.Sides(args, cfg, device)
    assert tool.check_equivalence(sides, args)['passed']
    with torch.no_grad():
        sides.ref.image_encoder.blocks[1].mlp.adapter.up.weight.mul_(1.5)
    with pytest.raises(AssertionError, match='do not compute the same thing'):
        tool.check_equivalence(sides, args)


def test_prompt_tuning_reference_copies_the_prompt_tokens_and_its_check_catches_a_difference():
    """The cached prompt-tuning rows compare against a reference with PTSAM's tokens appended
    plainly; the decoder check refuses to measure when they differ."""
    tool = load_tool()
    args = tool.parse_args(TINY + ['--classes-per-image', '2', '--rows', 'cache'])
    device, cfg = tool.setup(args)
    ours = tool.build_ours(cfg, args, device, args.img_size, adapter_blocks='none',
                           head_overrides=tool.CACHE_VARIANTS['prompt'][2])
    ref = tool.build_reference(ours)
    assert torch.equal(ref.prompt_tokens.tokens, ours.decode_head.prompt_tokens.tokens)
    trainable = [n for n, p in ref.named_parameters() if p.requires_grad]
    assert trainable == ['prompt_tokens.tokens']   # the decoder is frozen on both sides
    images, samples, _, _ = tool.make_inputs(args, device, args.img_size, len(ours.class_names))
    assert tool.check_decoders(ours, ref, images, samples, args) <= args.check_tol
    with torch.no_grad():
        ref.prompt_tokens.tokens.add_(0.5)
    with pytest.raises(AssertionError, match="decoder and the reference's differ"):
        tool.check_decoders(ours, ref, images, samples, args)


def test_a_memory_worker_that_runs_out_of_memory_gives_a_measured_lower_bound():
    """An out-of-memory side (killed by SIGKILL, as the OOM killer does, or refused by the
    allocator) does not stop the benchmark: the growth it reported while its step ran is its
    lower bound, and the ratio says '>='."""
    tool = load_tool()
    what = dict(row='train_memory', side='ref', kind='primary')
    growth = [json.dumps(dict(what, growth_mib=g)) for g in (100.0, 2048.0)]
    killed = subprocess.run([sys.executable, '-c', f'import os, signal; print({growth[0]!r}); '
                             f'print({growth[1]!r}, flush=True); os.kill(os.getpid(), signal.SIGKILL)'],
                            capture_output=True, text=True)
    assert killed.returncode == -9
    assert tool.worker_peak(killed, 'train_memory', 'ref') == (2048.0, True)
    early = subprocess.run([sys.executable, '-c', 'import os, signal; os.kill(os.getpid(), signal.SIGKILL)'],
                           capture_output=True, text=True)
    with pytest.raises(RuntimeError, match=r'train_memory:ref was killed \(SIGKILL\) before its step'):
        tool.worker_peak(early, 'train_memory', 'ref')
    refused = subprocess.CompletedProcess([], 0, json.dumps(dict(what, out_of_memory=True,
                                                                 growth_mib=300.0)) + '\n', '')
    assert tool.worker_peak(refused, 'train_memory', 'ref') == (300.0, True)
    fine = subprocess.CompletedProcess([], 0, 'a log line\n' + growth[0] + '\n' + json.dumps(
        dict(what, peak_mib=512.5)) + '\n', '')
    assert tool.worker_peak(fine, 'train_memory', 'ref') == (512.5, False)
    broken = subprocess.CompletedProcess([], 1, growth[0] + '\n', 'Traceback ...\nValueError: bad')
    with pytest.raises(RuntimeError, match=r'memory worker train_memory:ref failed \(exit 1\):\n'
                                           r'Traceback \.\.\.\nValueError: bad'):
        tool.worker_peak(broken, 'train_memory', 'ref')
    assert tool.bound_of({'ref'}) == '>=' and tool.bound_of({'ours'}) == '<='
    assert 'the reference ran out of memory' in tool.out_of_memory_note({'ref'}, torch.device('cpu'))


def test_memory_worker_command_and_output(capsys):
    """The memory rows' worker: its command line keeps the run's options but not those it must
    not act on, and what it prints (one side built, one step measured) is what worker_peak reads."""
    tool = load_tool()
    argv = TINY + ['--classes-per-image', '2', '--rows', 'train_memory', '--json', 'x.json',
                   '--plot=x.png']
    args = tool.parse_args(argv)
    cmd = tool.worker_command(args, 'train_memory:ref:tensors')
    assert cmd[:2] == [sys.executable, TOOL]
    assert cmd[2:] == TINY + ['--classes-per-image', '2', '--worker', 'train_memory:ref:tensors']
    for worker in ('train_memory:ours', 'infer_memory:ref:tensors'):
        assert tool.main(cmd[2:-1] + [worker]) == 0
        proc = subprocess.CompletedProcess([], 0, capsys.readouterr().out, '')
        peak, out_of_memory = tool.worker_peak(proc, *worker.split(':')[:2])
        assert peak > 0 and not out_of_memory


def test_measure_peak_reports_growth_while_running_and_bounds_a_refused_allocation():
    """The CPU allocator really refusing (an exabyte request) becomes StepOutOfMemory with the
    growth reached; while a step runs, its growth is reported (what a killed worker leaves)."""
    import time
    tool = load_tool()
    cpu = torch.device('cpu')
    held = []

    def step():
        held.append(torch.ones(64 * 2 ** 20, dtype=torch.uint8))  # 64 MiB, touched
        time.sleep(0.5)

    reports = []
    peak = tool.measure_peak(step, cpu, reports.append, interval=0.05)
    assert peak >= 60 and reports and 60 <= max(reports) <= peak + 1e-6

    def refused():
        held.append(torch.ones(32 * 2 ** 20, dtype=torch.uint8))
        torch.empty(2 ** 60, dtype=torch.uint8)

    with pytest.raises(tool.StepOutOfMemory) as info:
        tool.measure_peak(refused, cpu)
    assert info.value.bound_mib >= 28
    with pytest.raises(ValueError, match='not memory'):  # other errors pass through
        tool.measure_peak(lambda: (_ for _ in ()).throw(ValueError('not memory')), cpu)


def test_loss_size_and_float16_reach_both_sides():
    """--loss-size applies to ours and the reference (the check compares their losses and fails
    when only one side changes); --dtype float16 keeps the decoder float32 (no scaler)."""
    tool = load_tool()
    args = tool.parse_args(TINY + ['--classes-per-image', '2', '--loss-size', 'mask'])
    device, cfg = tool.setup(args)
    sides = tool.Sides(args, cfg, device)
    assert sides.ours.decode_head.loss_size == sides.ref.loss_size == 'mask'
    assert tool.check_equivalence(sides, args)['passed']
    sides.ref.loss_size = 'input'
    with pytest.raises(AssertionError, match='do not compute the same thing'):
        tool.check_equivalence(sides, args)
    args16 = tool.parse_args(TINY + ['--dtype', 'float16'])
    tool.setup(args16)
    ours = tool.build_ours(cfg, args16, device, args16.img_size)
    assert ours.backbone.autocast_dtype == 'float16' and ours.decode_head.autocast_dtype is None


def test_cache_check_runs_for_a_text_prompted_head():
    """The cached rows' decoder check gives the head its text when the head reads text."""
    tool = load_tool()
    args = tool.parse_args(TINY + ['--classes-per-image', '2', '--rows', 'cache', '--config',
                                   osp.join(REPO, 'configs/samptx/text-prompt-encoder_ade20k_1-64.py')])
    device, cfg = tool.setup(args)
    for variant in tool.CACHE_VARIANTS:
        ours = tool.build_ours(cfg, args, device, args.img_size, adapter_blocks='none',
                               head_overrides=tool.CACHE_VARIANTS[variant][2])
        assert ours.decode_head.uses_text
        assert ours.decode_head.has_prompt_tokens == (variant == 'prompt')
        images, samples, _, _ = tool.make_inputs(args, device, args.img_size, len(ours.class_names))
        assert tool.check_decoders(ours, tool.build_reference(ours), images, samples,
                                   args) <= args.check_tol


def test_reference_is_the_faithful_samptx_model_and_its_check_catches_each_adapter():
    """The default config is SAM-PTx as its authors built it: the reference re-implements, in the
    benchmark's own code, the attention-side adapter (inner skip) and the Parallel-Text adapter
    (text added to the tokens before the bottleneck) in every block; the fp32 check passes, and
    fails when either adapter of the reference differs."""
    from mmsamptx.models.adapters import AttentionAdapter, ParallelTextAdapter
    tool = load_tool()
    args = tool.parse_args(TINY + ['--classes-per-image', '2', '--dtype', 'float32'])
    device, cfg = tool.setup(args)
    sides = tool.Sides(args, cfg, device)
    assert args.points == 5  # the config's 5 positive points per (image, class)
    for blk, ref_blk in zip(sides.ours.backbone.blocks, sides.ref.image_encoder.blocks):
        assert type(blk.attn_adapter) is AttentionAdapter and blk.attn_adapter.inner_skip
        assert type(blk.adapter) is ParallelTextAdapter and blk.adapter.text_input == 'tokens'
        assert type(ref_blk.attn) is tool.AttnWithAdapter and ref_blk.attn.adapter.inner_skip
        assert type(ref_blk.mlp) is tool.MLPWithAdapter
        assert ref_blk.mlp.adapter.text_input == 'tokens'
        assert ref_blk.mlp.adapter.text_proj.out_features == sides.ours.backbone.embed_dims
    # the reference's adapters are its own code, not ours'
    assert not any(type(m).__module__.startswith('mmsamptx.') for m in sides.ref.modules())
    eq = tool.check_equivalence(sides, args)
    assert eq['passed'] and eq['rel_logit_diff'] < 1e-4 and eq['max_rel_loss_diff'] < 1e-5
    # the authors' loss terms are compared, soft IoU included
    assert sides.ref.loss_weights['soft_iou'] == 1.0 and sides.ref.dice_eps == 1e-6
    for module in ('attn', 'mlp'):
        adapter = getattr(sides.ref.image_encoder.blocks[0], module).adapter
        with torch.no_grad():
            adapter.down.weight.mul_(1.5)
        with pytest.raises(AssertionError, match='do not compute the same thing'):
            tool.check_equivalence(sides, args)
        with torch.no_grad():
            adapter.down.weight.div_(1.5)
        assert tool.check_equivalence(sides, args)['passed']


def test_reference_implements_or_refuses_each_head_text_option():
    """'prompt_encoder' is implemented plainly and passes the fp32 check; the head options the
    naive reference cannot express are refused by name instead of leaving the text out."""
    tool = load_tool()
    args = tool.parse_args(TINY + ['--classes-per-image', '2', '--dtype', 'float32', '--config',
                                   osp.join(REPO, 'configs/samptx/text-prompt-encoder_ade20k_1-64.py')])
    device, cfg = tool.setup(args)
    sides = tool.Sides(args, cfg, device)
    assert sides.ours.decode_head.text_injection == 'prompt_encoder'
    assert sides.ref.text_prompt_token is not None
    assert tool.check_equivalence(sides, args)['passed']
    with torch.no_grad():
        sides.ref.text_prompt_token.type_embed.weight.add_(0.5)
    with pytest.raises(AssertionError, match='do not compute the same thing'):
        tool.check_equivalence(sides, args)
    for option in ('decoder_cross_attn', 'decoder'):
        ours = tool.build_ours(cfg, args, device, args.img_size,
                               head_overrides=dict(text_injection=option, text_dims=512))
        with pytest.raises(ValueError, match=f"text_injection='{option}' has no naive reference"):
            tool.build_reference(ours)


def test_inference_class_chunk_keeps_the_masks_and_lowers_the_tensor_peak():
    """The inference memory fix: ours' class batch runs in chunks (test_cfg.class_chunk, 'auto':
    at most 2048 tokens per pass). The masks are those of one batch; the tensor-allocation
    peak of an image's inference falls with the chunk."""
    tool = load_tool()
    assert tool.parse_args(['--img-size', '512']).infer_class_chunk == 2
    assert tool.parse_args(['--img-size', '1024']).infer_class_chunk == 1
    assert tool.parse_args(['--img-size', '256']).infer_class_chunk == 8
    assert tool.parse_args(['--infer-class-chunk', '3']).infer_class_chunk == 3
    for bad in ('0', 'many'):
        with pytest.raises(SystemExit):
            tool.parse_args(['--infer-class-chunk', bad])
    args = tool.parse_args(['--arch', 'tiny', '--img-size', '128', '--classes-per-image', '4',
                            '--dtype', 'float32', '--infer-class-chunk', '1'])
    device, cfg = tool.setup(args)
    sides = tool.Sides(args, cfg, device, which=('ours',))
    assert sides.ours.test_cfg['class_chunk'] == 1
    chunked = sides.ours_infer()
    peak = {1: tool.profiled_tensor_peak(sides.ours_infer)}
    sides.ours.test_cfg['class_chunk'] = 4
    whole = sides.ours_infer()
    peak[4] = tool.profiled_tensor_peak(sides.ours_infer)
    for (m1, s1), (m4, s4) in zip(chunked, whole):
        torch.testing.assert_close(m1, m4, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(s1, s4, rtol=1e-4, atol=1e-5)
    assert peak[1] < 0.6 * peak[4], peak


def test_clip_guided_sam_rows_against_the_authors_way(tmp_path):
    """--method clip_guided_sam (tiny SAM + tiny CLIP, in-process, memory measured inline): the
    fp32 check passes (t, similarity map, masks, losses), and the training, training-memory and
    text-only rows each hold a number for ours and for the reference."""
    tool = load_tool()
    out = tmp_path / 'cgs.json'
    threads = torch.get_num_threads()
    try:
        # one thread: a smoke test, on a machine shared with the rest of the suite
        assert tool.main(TINY + ['--method', 'clip_guided_sam', '--clip-model', 'mmsamptx-tiny-clip',
                                 '--clip-size', '32', '--classes-per-image', '2',
                                 '--text-classes', '2', '--memory-isolation', 'inline',
                                 '--no-tensor-memory', '--threads', '1', '--json', str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert result['method'] == 'clip_guided_sam'
    assert result['config'] == 'configs/clip_guided_sam/cgs_voc_1-16.py'
    assert result['clip']['model_name'] == 'mmsamptx-tiny-clip' and result['clip']['clip_size'] == 32
    eq = result['equivalence']
    assert eq['passed'] and eq['max_text_diff'] <= eq['tolerance']
    assert eq['max_similarity_map_diff'] <= eq['tolerance'] and eq['max_rel_loss_diff'] <= 1e-5
    units = [r['unit'] for r in result['rows']]
    assert units == ['images/s', 's/image', 'MiB']
    assert 'text-only inference, 2 classes' in result['rows'][1]['name']
    for row in result['rows']:
        for key in ('ours', 'reference', 'ratio'):
            assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0, row


def test_evf_sam_rows_one_call_against_one_call_each(tmp_path):
    """--method evf_sam (tiny SAM + tiny BEiT-3, in-process, memory inline): several expressions in
    one call give the masks of one call per expression (checked before timing), and the
    multi-expression and checkpointing-memory rows each hold a number for both sides."""
    tool = load_tool()
    out = tmp_path / 'evf.json'
    assert tool.main(TINY + ['--method', 'evf_sam', '--beit3-arch', 'tiny', '--expressions', '2',
                             '--rows', 'multi_expression,train_memory', '--memory-isolation', 'inline',
                             '--no-tensor-memory', '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['method'] == 'evf_sam'
    assert result['config'] == 'configs/evf_sam/evf-sam_vit-h_refcoco-mix.py'
    assert (result['arch'], result['beit3_arch'], result['expressions_per_image']) == ('tiny', 'tiny', 2)
    eq = result['equivalence']
    assert eq['passed'] and eq['rel_logit_diff'] <= eq['tolerance'] and eq['mask_agreement'] == 1.0
    assert [r['unit'] for r in result['rows']] == ['s/image', 'MiB']
    for row in result['rows']:
        for key in ('ours', 'reference', 'ratio'):
            assert isinstance(row[key], float) and math.isfinite(row[key]) and row[key] > 0, row
