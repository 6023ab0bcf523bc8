"""The model and its decoding: cached == uncached, beam 1 == greedy, sharded == single device,
a tiny model overfits a few drawings exactly, and a checkpoint resumes to the same next loss."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from cad2program.contract import tokenizer
from cad2program.evaluation.scoring import score_drawing
from cad2program.model.configs import tiny
from cad2program.model.decode import DecodeOptions, default_grammar, generate, generate_uncached
from cad2program.model.network import DrawingReader
from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet
from cad2program.contract.program_text import parse_program
from cad2program.model.modelfile import export_model, load_model, with_fusion
from cad2program.reading import Recognizer
from cad2program.reading.recognition import programs_from_tokens


def tiny_model(fusion: str = "cross_attention", seed: int = 0) -> DrawingReader:
    config = tiny().model
    return DrawingReader(dataclasses.replace(config, fusion=fusion), nnx.Rngs(seed))


def random_inputs(batch: int, size: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.random((batch, size, size, 1), np.float32)
    sheets = [Sheet(200, 150), Sheet(100, 180), Sheet(500, 250), Sheet(60, 60)][:batch]
    prompts = np.array([tokenizer.encode_prompt(s) for s in sheets], np.int32)
    return images, prompts, sheets


@pytest.mark.parametrize("fusion", ["cross_attention", "prefix"])
def test_cached_step_logits_equal_full_forward(fusion):
    model = tiny_model(fusion)
    images, _, _ = random_inputs(2)
    tokens = jnp.asarray(np.random.default_rng(1).integers(0, tokenizer.VOCAB_SIZE, (2, 20)))
    full, _ = model(jnp.asarray(images), tokens)
    memory = model.embed_image(jnp.asarray(images))
    logits, cache = model.prefill_cache(memory, tokens[:, :4], model.init_cache(2))
    stepwise = [logits]
    for t in range(4, 20):
        logits, cache = model.extend_cache(tokens[:, t], cache)
        stepwise.append(logits)
    np.testing.assert_allclose(np.stack(stepwise, 1), np.asarray(full[:, 3:]), atol=1e-4)


@pytest.mark.parametrize("fusion", ["cross_attention", "prefix"])
def test_cached_decoding_gives_the_tokens_of_the_uncached_loop(fusion):
    model = tiny_model(fusion, seed=3)
    images, prompts, sheets = random_inputs(3)
    grammar = default_grammar()
    limits = np.array([tokenizer.value_limits(s) for s in sheets])
    cached, _ = generate(model, images, prompts, grammar, DecodeOptions(max_new_tokens=40), limits=limits)
    uncached = generate_uncached(model, images, prompts, grammar, max_new_tokens=40, limits=limits)
    np.testing.assert_array_equal(cached, uncached)


def test_beam_search_of_width_one_is_greedy():
    model = tiny_model(seed=5)
    images, prompts, _ = random_inputs(3)
    grammar = default_grammar()
    greedy, greedy_logprobs = generate(model, images, prompts, grammar, DecodeOptions(max_new_tokens=40))
    beam, beam_logprobs = generate(model, images, prompts, grammar,
                                   DecodeOptions(method="beam", beam_width=1, max_new_tokens=40))
    np.testing.assert_array_equal(greedy, beam)
    np.testing.assert_allclose(greedy_logprobs, beam_logprobs, atol=1e-5)


def test_beam_search_scores_at_least_as_well_as_greedy():
    model = tiny_model(seed=7)
    images, prompts, _ = random_inputs(2)
    grammar = dataclasses.replace(default_grammar(), windows=None)  # the tokens' own log-probs: beam's objective
    options = DecodeOptions(max_new_tokens=40)
    _, greedy_logprobs = generate(model, images, prompts, grammar, options)
    _, beam_logprobs = generate(model, images, prompts, grammar, dataclasses.replace(options, method="beam", beam_width=4))
    assert np.all(beam_logprobs.sum(1) >= greedy_logprobs.sum(1) - 1e-4)


@pytest.mark.parametrize("options", [
    DecodeOptions(method="greedy", max_new_tokens=40),
    DecodeOptions(method="sample", temperature=1.5, top_p=0.9, repetition_penalty=1.3, max_new_tokens=40),
    DecodeOptions(method="beam", beam_width=4, repetition_penalty=1.2, max_new_tokens=40),
])
def test_constrained_outputs_always_parse(options):
    model = tiny_model(seed=11)
    images, prompts, sheets = random_inputs(4)
    limits = np.array([tokenizer.value_limits(s) for s in sheets])
    tokens, logprobs = generate(model, images, prompts, default_grammar(), options, rng=jax.random.key(1),
                                limits=limits)
    for recognition, sheet in zip(programs_from_tokens(tokens, logprobs, sheets), sheets):
        assert parse_program(recognition.program) == recognition.primitives  # complete primitives only
        assert all(0.0 <= c <= 1.0 for c in recognition.confidences)
        for primitive in recognition.primitives:  # coordinates are kept on the sheet
            assert all(0 <= x <= sheet.width and 0 <= y <= sheet.height for x, y in primitive.key_points()[:1])


def test_sharded_train_step_equals_single_device_step(tmp_path):
    """Runs in a subprocess: the host platform must be split into 4 devices before JAX starts."""
    script = textwrap.dedent("""
        import json, numpy as np, jax
        from flax import nnx
        from cad2program.model.configs import tiny
        from cad2program.model.modelfile import build_model
        from cad2program.training.train import make_mesh, make_optimizer, make_train_step, replicate, shard_batch
        assert jax.device_count() == 4, jax.devices()
        config = tiny()
        graphdef, params = nnx.split(build_model(config))
        optimizer = make_optimizer(config)
        rng = np.random.default_rng(0)
        batch = {"image": rng.random((8, 64, 64, 1), np.float32),
                 "tokens": rng.integers(4, 500, (8, 24)).astype(np.int32)}
        single = make_train_step(graphdef, optimizer)
        p1, _, m1 = single(jax.tree_util.tree_map(lambda x: x.copy(), params), optimizer.init(params), batch)
        mesh = make_mesh()
        sharded = make_train_step(graphdef, optimizer, mesh)
        p4, _, m4 = sharded(replicate(params, mesh), replicate(optimizer.init(params), mesh), shard_batch(batch, mesh))
        diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                   for a, b in zip(jax.tree_util.tree_leaves(p1), jax.tree_util.tree_leaves(p4)))
        print(json.dumps({"loss1": float(m1["loss"]), "loss4": float(m4["loss"]), "param_diff": diff,
                          "sharding": str(p4["lm_head"]["kernel"].sharding)}))
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert abs(figures["loss1"] - figures["loss4"]) < 1e-5
    assert figures["param_diff"] < 1e-5


def _fixed_batch(config, drawings):
    from cad2program.model.input_pipeline import encode_target
    images = np.zeros((len(drawings), config.model.image_size, config.model.image_size, 1), np.float32)
    for i, (sheet, primitives) in enumerate(drawings):
        # Distinct images: a different bar pattern per drawing (the content need not be realistic here).
        images[i, :, 4 * i:4 * i + 3, 0] = 1.0
        images[i, 8 * i:8 * i + 5, :, 0] = 1.0
    tokens = np.stack([encode_target(s, p, config.max_tokens) for s, p in drawings])
    return {"image": images, "tokens": tokens}


DRAWINGS = [
    (Sheet(200, 150), [Rectangle(10, 15, 40, 20), Circle(120, 80, 12.5)]),
    (Sheet(100, 100), [Line(5, 5, 95, 60)]),
    (Sheet(300, 200), [Circle(50, 50, 20), Circle(200, 120, 7), Rectangle(150, 20, 100.5, 30)]),
    (Sheet(150, 250), [Rectangle(20, 30, 80, 120)]),
]


def test_tiny_model_overfits_a_few_drawings_to_their_exact_programs():
    from cad2program.training.train import make_optimizer, make_train_step, trim_batch
    config = tiny().replace(learning_rate=3e-3, warmup_steps=10, steps=250)
    batch = trim_batch(_fixed_batch(config, DRAWINGS))
    graphdef, params = nnx.split(DrawingReader(config.model, nnx.Rngs(0)))
    optimizer = make_optimizer(config)
    opt_state = optimizer.init(params)
    step = make_train_step(graphdef, optimizer)
    for _ in range(config.steps):
        params, opt_state, metrics = step(params, opt_state, batch)
    assert float(metrics["loss"]) < 0.05
    prompts = batch["tokens"][:, :tokenizer.PROMPT_LENGTH]
    tokens, logprobs = generate((graphdef, params), batch["image"], prompts, default_grammar(),
                                DecodeOptions(max_new_tokens=60))
    recognitions = programs_from_tokens(tokens, logprobs, [s for s, _ in DRAWINGS])
    # Exactly the programs the tokens express: sizes as written, positions on the sheet's S/500 grid.
    assert [r.primitives for r in recognitions] == [tokenizer.decode(tokenizer.encode_program(s, p), s)
                                                   for s, p in DRAWINGS]
    assert [score_drawing(r.primitives, p, s)["exact"] for r, (s, p) in zip(recognitions, DRAWINGS)] == [True] * 4


def test_a_row_cut_off_inside_a_polyline_keeps_only_its_complete_primitives():
    sheet = Sheet(200, 150)
    line = Line(10, 20, 60, 20)
    whole = tokenizer.encode_program(sheet, [line, Polyline(((100, 100), (120, 100)), False)])
    cut = np.array([whole[:-3]], np.int32)  # the length limit came after the polyline's first point (no <eos>)
    [recognition] = programs_from_tokens(cut, np.zeros(cut.shape, np.float32), [sheet])
    assert recognition.primitives == tokenizer.decode(tokenizer.encode_program(sheet, [line]), sheet)
    assert len(recognition.spans) == 1 and not recognition.valid
    assert recognition.problems == ["the output reached the length limit"]


def test_checkpoint_resumes_to_the_same_next_loss(tmp_path):
    from cad2program.training.train import train_and_evaluate
    config = tiny().replace(steps=6, eval_every=1000, checkpoint_every=3, log_every=1, eval_examples=0)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(config, straight, progress=False, log=lambda *_: None)
    train_and_evaluate(config, resumed, progress=False, log=lambda *_: None, stop_at_step=3)
    train_and_evaluate(config, resumed, progress=False, log=lambda *_: None)  # resumes at step 3

    def losses(workdir):
        return {r["step"]: r["loss"] for r in map(json.loads, (workdir / "train_log.jsonl").read_text().splitlines())}

    a, b = losses(straight), losses(resumed)
    assert [a[s] for s in (4, 5, 6)] == pytest.approx([b[s] for s in (4, 5, 6)], abs=1e-6)


def test_exported_model_loads_and_recognizes_the_same(tmp_path):
    config = tiny()
    model = DrawingReader(config.model, nnx.Rngs(2))
    path = export_model(tmp_path / "m.msgpack", config, nnx.state(model))
    loaded_config, loaded, _ = load_model(path)
    assert loaded_config == config
    images, prompts, sheets = random_inputs(2)
    a = Recognizer(config, model).recognize_prepared(images, sheets)
    b = Recognizer(loaded_config, loaded).recognize_prepared(images, sheets)
    assert [r.program for r in a] == [r.program for r in b]


def test_bench_reports_every_figure_and_equal_tokens():
    from cad2program.training.speed import run_bench
    figures = run_bench(tiny(), quick=True)
    for key in ("train_samples_per_s", "train_flops_fraction", "decode_ms_per_drawing_b1", "decode_drawings_per_s_b32",
                "naive_drawings_per_s_b32", "decode_speedup", "end_to_end_speedup"):
        assert figures[key] > 0, key
    assert figures["cached_equals_naive"] is True


def test_matmul_convolutions_equal_the_convolutions_they_replace():
    from cad2program.model.network import conv_3x3_stride_2, patchify_matmul
    rngs = nnx.Rngs(0)
    x = jax.random.normal(jax.random.key(1), (2, 16, 12, 5))
    stem = nnx.Conv(5, 7, (3, 3), strides=2, padding="SAME", rngs=rngs)
    patch = nnx.Conv(5, 6, (4, 4), strides=4, padding="VALID", rngs=rngs)
    np.testing.assert_allclose(conv_3x3_stride_2(x, stem), stem(x), atol=1e-5)
    np.testing.assert_allclose(patchify_matmul(x, patch), patch(x), atol=1e-5)


def test_a_model_of_another_token_format_is_refused_with_a_clear_error(tmp_path):
    from flax import serialization
    from cad2program.errors import UserError
    path = export_model(tmp_path / "m.msgpack", tiny(), nnx.state(DrawingReader(tiny().model, nnx.Rngs(0))))
    payload = serialization.msgpack_restore(path.read_bytes())
    del payload["token_format"]  # as in files written before format 2
    path.write_bytes(serialization.msgpack_serialize(payload))
    with pytest.raises(UserError, match="token format 1.*reads format 2"):
        load_model(path)


def test_soft_value_targets_reward_nearby_positions_and_leave_other_tokens_one_hot():
    from cad2program.training.train import soft_value_cross_entropy
    vocab = tokenizer.VOCAB_SIZE
    target = tokenizer.VALUE0 + 250

    def loss_when_predicting(token, sigma):
        logits = jnp.full((1, 1, vocab), -5.0).at[0, 0, token].set(5.0)
        return float(soft_value_cross_entropy(logits, jnp.array([[target]]), sigma)[0, 0])

    hard_near, hard_far = loss_when_predicting(target + 1, 0.0), loss_when_predicting(target + 40, 0.0)
    assert hard_near == pytest.approx(hard_far)  # one-hot: near is as wrong as far
    assert loss_when_predicting(target + 1, 2.0) < loss_when_predicting(target + 4, 2.0) < \
        loss_when_predicting(target + 40, 2.0)
    assert loss_when_predicting(target, 2.0) < loss_when_predicting(target + 1, 2.0)
    digit = jnp.array([[tokenizer.DIGIT0 + 3]])
    logits = jax.random.normal(jax.random.key(0), (1, 1, vocab))
    np.testing.assert_allclose(soft_value_cross_entropy(logits, digit, 2.0),
                               soft_value_cross_entropy(logits, digit, 0.0))


def test_keypoint_map_marks_the_patches_where_programs_write_positions():
    from cad2program.model.input_pipeline import keypoint_map
    sheet = Sheet(200, 100)  # 8 x 8 patches of 25 mm; the sheet fills the top half of the square image
    circle, line = Circle(110, 60, 20), Line(0, 0, 199, 99)
    grid = keypoint_map(sheet, [circle, line], 8)
    assert grid[1, 4] == 3  # the circle's centre: row (100 - 60) / 25 = 1, column 110 / 25 = 4; type 3
    assert grid[3, 0] == 1 and grid[0, 7] == 1  # the line's ends (y = 0 is the sheet's bottom, row 3)
    assert np.count_nonzero(grid) == 3 and not grid[4:].any()  # nothing below the sheet


def test_keypoint_loss_trains_the_encoder_head_when_the_config_asks_for_it():
    from cad2program.training.train import make_optimizer, make_train_step
    config = tiny().replace(keypoint_weight=1.0)
    config = config.replace(model=dataclasses.replace(config.model, keypoint_classes=6))
    batch = _fixed_batch(config, DRAWINGS)
    batch["keypoints"] = np.zeros((4, 8, 8), np.int32)
    batch["keypoints"][:, 2, 3] = 2
    graphdef, params = nnx.split(DrawingReader(config.model, nnx.Rngs(0)))
    optimizer = make_optimizer(config)
    step = make_train_step(graphdef, optimizer, keypoint_weight=1.0)
    opt_state = optimizer.init(params)
    losses = []
    for _ in range(30):
        params, opt_state, metrics = step(params, opt_state, batch)
        losses.append(float(metrics["keypoint_loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_the_keypoint_task_runs_only_with_both_a_weight_and_a_head():
    with_head = dataclasses.replace(tiny().model, keypoint_classes=6)
    assert tiny().replace(model=with_head, keypoint_weight=1.0).keypoint_grid == 64 // 8
    assert tiny().replace(model=with_head, keypoint_weight=0.0).keypoint_grid == 0  # fine-tuning without it
    assert tiny().replace(keypoint_weight=1.0).keypoint_grid == 0  # no head to train


def test_a_training_seed_never_draws_from_the_held_out_streams():
    from cad2program.model.input_pipeline import RETRY_SEED_STEP
    from cad2program.training.train import EVAL_SEED, training_seed_problem
    assert training_seed_problem(0) is None and training_seed_problem(1) is None
    assert "held out" in training_seed_problem(EVAL_SEED)
    assert "held out" in training_seed_problem(EVAL_SEED - 3 * RETRY_SEED_STEP)  # its 4th retry stream is held out
    assert "held out" in training_seed_problem(9002)  # a test set's stream
    assert "must be >= 0" in training_seed_problem(-1)


def test_a_value_token_counts_its_neighbours_within_the_window_and_other_tokens_only_themselves():
    from cad2program.model.decode import Grammar, neighbourhood_logprob

    probs = np.array([[0.1, 0.1, 0.2, 0.3, 0.2, 0.1]] * 4)  # tokens 0, 1 are not values; 2..5 are
    grammar = Grammar(table=np.zeros((3, 6), np.int32), start_state=0, eos=0, pad=0,
                      value_first=2, value_last=5, windows=np.array([0, 1, 3]))
    tokens, states = jnp.array([3, 3, 2, 1]), jnp.array([0, 1, 1, 2])
    got = np.exp(np.asarray(neighbourhood_logprob(jnp.log(jnp.asarray(probs)), tokens, states, grammar)))
    # window 0: the token alone; window 1: tokens 2..4; window 1 at the first value: 2..3; not a value: itself
    np.testing.assert_allclose(got, [0.3, 0.7, 0.5, 0.1], rtol=1e-5)


def test_confidences_use_the_matching_tolerance_and_leave_out_read_digits():
    from cad2program.reading.recognition import primitive_confidence

    windows = tokenizer.GRAMMAR_WINDOWS
    state_of = {}  # the window of the state each token of an arc is chosen in
    arc = tokenizer.encode_primitive(Arc(50, 60, 10, 30, 120), Sheet(200, 100))
    state = tokenizer.GRAMMAR_START
    for token in arc:
        state_of.setdefault(tokenizer.VOCAB[token], []).append(int(windows[state]))
        state = tokenizer.GRAMMAR_TABLE[state, token]
    assert state_of["arc"] == [0]
    assert set(sum((w for name, w in state_of.items() if name.startswith("d")), [])) == {0}  # digits
    value_windows = sum((w for name, w in state_of.items() if name.startswith("#")), [])
    assert value_windows == [10, 10, 10, 5, 5]  # x, y, measured radius; start and end angles
    tokens = np.array([tokenizer.TYPE_ID["circle"], tokenizer.VALUE0, tokenizer.DIGIT0 + 4, tokenizer.SIZE_END])
    assert primitive_confidence(tokens, np.log([0.5, 0.5, 0.01, 0.01])) == pytest.approx(0.25)


def test_the_fitted_confidence_power_recovers_how_confidences_relate_to_matches():
    from cad2program.reading import fit_confidence_power

    rng = np.random.default_rng(0)
    raw = rng.uniform(0.01, 1.0, 4000)
    matched = rng.uniform(size=raw.size) < raw ** 0.5  # the true chance of a match is raw ** 0.5
    assert fit_confidence_power(raw, matched) == pytest.approx(0.5, abs=0.06)
    assert fit_confidence_power(raw, np.ones(raw.size, bool)) == 1.0  # nothing to fit on


def test_training_writes_the_confidence_power_into_its_models_and_recognizers_apply_it(tmp_path):
    from cad2program.reading.settings import DEFAULT_SETTINGS, ReadingSettings
    from cad2program.training.train import train_and_evaluate
    config = tiny().replace(steps=2, eval_every=2, checkpoint_every=2, eval_examples=4)
    train_and_evaluate(config, tmp_path, progress=False, log=lambda *_: None)
    for name in ("model.msgpack", "best_model.msgpack"):
        extra = load_model(tmp_path / name)[2]
        assert extra["confidence_power"] > 0
        # the reading settings its evaluation read with travel with it (docs/thresholds.md)
        assert ReadingSettings.from_json(extra["reading"]) == DEFAULT_SETTINGS
        assert Recognizer.load(tmp_path / name).settings == DEFAULT_SETTINGS
    loaded_config, model, _ = load_model(tmp_path / "model.msgpack")
    images, _, sheets = random_inputs(2)
    # Without measuring on the ink: on random images it leaves little of a random model's reading.
    raw = Recognizer(loaded_config, model, refine=False).recognize(list(images[..., 0]), sheets)
    calibrated = Recognizer(loaded_config, model, refine=False, info={"confidence_power": 0.5}).recognize(
        list(images[..., 0]), sheets)
    assert [r.primitives for r in raw] == [r.primitives for r in calibrated] and any(r.primitives for r in raw)
    assert [c for r in calibrated for c in r.confidences] == pytest.approx([c ** 0.5 for r in raw for c in r.confidences])


def test_calibrate_script_writes_a_fitted_power_into_the_model_file(tmp_path, capsys):
    import runpy
    from pathlib import Path

    config = tiny()
    path = export_model(tmp_path / "m.msgpack", config, nnx.state(DrawingReader(config.model, nnx.Rngs(4))),
                        {"step": 7})
    script = Path(__file__).resolve().parents[1] / "scripts" / "calibrate_confidences.py"
    main = runpy.run_path(str(script))["main"]
    assert main([str(path), "--drawings", "3", "--image-size", "128", "--out", str(tmp_path / "c.msgpack")]) == 0
    extra = load_model(tmp_path / "c.msgpack")[2]
    assert extra["step"] == 7 and extra["confidence_power"] > 0  # other metadata kept
    assert "confidence power 1.0 ->" in capsys.readouterr().out


@pytest.mark.parametrize("fusion", ["cross_attention", "prefix"])
def test_continuation_scores_equal_the_full_forward_log_probabilities(fusion):
    from cad2program.model.decode import continuation_logprobs, embed_images

    model = tiny_model(fusion, seed=13)
    images, prompts, _ = random_inputs(1)
    circle = [tokenizer.TYPE_ID["circle"], tokenizer.VALUE0 + 40, tokenizer.VALUE0 + 30, tokenizer.VALUE0 + 9]
    sequence = [int(t) for t in prompts[0]] + circle + tokenizer.encode_size(18) + circle
    # Continuations over the circle's size, and after the whole sequence (its end is a start too).
    starts = [len(prompts[0]) + len(circle)] * 4 + [len(sequence)] * 2
    continuations = [tokenizer.encode_size(v) for v in (18, 18.2, 19.6, 120, 7, 33.3)]
    memory = embed_images(model, images)
    got = continuation_logprobs(model, memory, sequence, starts, continuations, tokenizer.PAD, model.cfg.max_len,
                                width=6)
    for start, continuation, score in zip(starts, continuations, got):
        tokens = jnp.asarray([sequence[:start] + continuation])
        logits, _ = model.decode_full(memory, tokens)
        log_probs = jax.nn.log_softmax(logits[0], axis=-1)
        expected = sum(float(log_probs[start - 1 + i, t]) for i, t in enumerate(continuation))
        assert score == pytest.approx(expected, abs=2e-3)


def test_a_continuation_scores_the_same_at_any_width_it_fits_and_with_any_rows_beside_it():
    from cad2program.model.decode import continuation_logprobs, embed_images

    model = tiny_model(seed=14)
    images, prompts, _ = random_inputs(1)
    sequence = [int(t) for t in prompts[0]] + [tokenizer.TYPE_ID["circle"], tokenizer.VALUE0 + 40,
                                               tokenizer.VALUE0 + 30, tokenizer.VALUE0 + 9]
    continuations = [tokenizer.encode_size(v) for v in (18, 18.2, 19.6)]
    memory = embed_images(model, images)
    score = functools.partial(continuation_logprobs, model, memory, sequence, pad=tokenizer.PAD,
                              max_len=model.cfg.max_len)
    narrow = score([len(sequence)] * 3, continuations, width=6)  # padded to 4 rows
    wide = score([len(sequence)] * 20, continuations * 6 + continuations[:2], width=64)  # to 32 rows
    np.testing.assert_allclose(wide[:3], narrow, atol=1e-4)


def test_a_split_passed_again_is_flattened_once_and_new_parameters_are_seen():
    from cad2program.model.decode import embed_images, for_jit

    model = tiny_model(seed=15)
    split = nnx.split(model)
    first, leaves = for_jit(split)
    again, same_leaves = for_jit(split)
    assert again is first and same_leaves is leaves  # a lookup: nothing hashed or flattened again
    images, _, _ = random_inputs(1)
    before = np.asarray(embed_images(split, images))
    graphdef, params = split
    changed = jax.tree.map(lambda x: x * 0.5, params)  # new parameters, the same structure
    other, other_leaves = for_jit((graphdef, changed))
    assert other == first and other_leaves is not leaves  # one compiled function serves both
    assert not np.allclose(np.asarray(embed_images((graphdef, changed), images)), before)
    np.testing.assert_allclose(np.asarray(embed_images(model, images)), before, atol=1e-6)


def test_a_size_the_ink_contradicts_is_read_again_within_what_the_ink_allows():
    from cad2program.model.decode import continuation_logprobs, embed_images
    from cad2program.reading import Recognition
    from cad2program.reading.settings import DEFAULT_SETTINGS
    from cad2program.reading.sizes import SIZE_TOKENS, size_jobs

    sheet = Sheet(200, 100)
    rect = Rectangle(20, 30, 30, 10)  # the model read 30 x 10
    row = np.array(tokenizer.encode_primitive(rect, sheet) + [tokenizer.EOS])
    recognition = Recognition(sheet, [rect], [0.5], valid=True, tokens=row, spans=[(0, len(row) - 1)])
    ink = {"width": 34.04, "height": 10.1, "mm_per_px": 0.4}  # the ink agrees on the height only
    [[(field, start, candidates), (other, _, _)]] = size_jobs(recognition, [ink])
    assert (field, other) == ("width", "height") and row[start] == tokenizer.DIGIT0 + 3
    values = [v for v, _, _ in candidates]
    reach = 3 * DEFAULT_SETTINGS.ink_sigma_px['rectangle'] * ink["mm_per_px"]  # candidates: within 3 sigmas of the ink's 34.04
    assert min(values) >= 34.04 - reach and min(values) - 0.1 < 34.04 - reach
    assert max(values) <= 34.04 + reach and max(values) + 0.1 > 34.04 + reach and 30 not in values
    prior = dict((v, p) for v, _, p in candidates)
    assert prior[34.0] > prior[34.4] > prior[35.0]  # the nearer the ink's measurement, the likelier

    recognizer = Recognizer(tiny(), tiny_model(seed=17))
    images, _, _ = random_inputs(1)
    [reread] = recognizer.reread_sizes(images, [recognition], [[ink]])
    sequence = tokenizer.encode_prompt(sheet) + [int(t) for t in row]
    scores = continuation_logprobs(recognizer.split, embed_images(recognizer.split, images), sequence,
                                   [len(sequence) - len(row) + start] * len(candidates),
                                   [digits for _, digits, _ in candidates], tokenizer.PAD, 192, width=SIZE_TOKENS)
    width = values[int(np.argmax(DEFAULT_SETTINGS.reading_weight * scores + np.array([p for _, _, p in candidates])))]
    assert reread.primitives[0].width == width
    assert reread.primitives[0].x + width / 2 == pytest.approx(rect.x + rect.width / 2, abs=0.06)  # same centre
    # Ink in other millimetres than the readings (a wrong sheet size): the readings stay.
    assert size_jobs(recognition, [{"width": 45.0, "height": 13.0, "mm_per_px": 0.4}]) == [[]]


def test_a_value_the_ocr_read_on_the_drawing_is_favoured_among_those_the_ink_allows():
    from cad2program.reading import Recognition
    from cad2program.reading.settings import DEFAULT_SETTINGS
    from cad2program.reading.sizes import size_jobs

    sheet = Sheet(200, 100)
    circle = Circle(50, 50, 10)  # the model read Ø20
    row = np.array(tokenizer.encode_primitive(circle, sheet) + [tokenizer.EOS])
    # The OCR read 'Ø20.4' at the circle's edge, '20' far away (another primitive's) and an unrelated '75'.
    written = ((20.4, 60.0, 50.0, False), (20.0, 190.0, 95.0, False), (75.0, 60.0, 52.0, False))
    recognition = Recognition(sheet, [circle], [0.5], valid=True, tokens=row, spans=[(0, len(row) - 1)],
                              written=written)
    ink = {"radius": 10.15, "mm_per_px": 0.4}
    [[(field, _, candidates)]] = size_jobs(recognition, [ink])
    without = dict((v, p) for v, _, p in size_jobs(dataclasses.replace(recognition, written=None), [ink])[0][0][2])
    prior = dict((v, p) for v, _, p in candidates)
    assert field == "radius" and prior[10.2] == pytest.approx(without[10.2] + DEFAULT_SETTINGS.written_bonus)  # 20.4, on the outline
    assert 0 < prior[10.0] - without[10.0] < DEFAULT_SETTINGS.written_bonus - 4  # 20 is written, but 8 tolerances away
    assert all(prior[v] == without[v] for v in prior if v not in (10.0, 10.2))  # 75 is beyond what the ink allows

    recognizer = Recognizer(tiny(), tiny_model(seed=17))
    images, _, _ = random_inputs(1)
    [reread] = recognizer.reread_sizes(images, [recognition], [[ink]])
    assert reread.primitives[0].radius == 10.2


def test_a_number_written_after_an_r_is_a_radius_for_circles_and_arcs_and_no_rectangle_side():
    from cad2program.reading.settings import DEFAULT_SETTINGS
    from cad2program.reading.sizes import bonus_of_written_values

    sheet = Sheet(200, 100)
    written = ((10.1, 60.0, 50.0, True), (12.0, 60.0, 50.0, False))  # 'R10.1' and '12', on the outlines
    assert bonus_of_written_values(Circle(50, 50, 10), written, sheet, DEFAULT_SETTINGS) == {20.2: DEFAULT_SETTINGS.written_bonus, 12.0: DEFAULT_SETTINGS.written_bonus}  # diameters
    assert bonus_of_written_values(Arc(50, 50, 10, 0, 90), written, sheet, DEFAULT_SETTINGS) == {  # without an R: less likely an arc's
        10.1: DEFAULT_SETTINGS.written_bonus, 12.0: DEFAULT_SETTINGS.written_bonus * DEFAULT_SETTINGS.plain_share_for_arcs}
    assert bonus_of_written_values(Rectangle(40, 40, 20, 10), written, sheet, DEFAULT_SETTINGS) == {12.0: DEFAULT_SETTINGS.written_bonus}


def test_after_the_warm_up_re_reading_sizes_compiles_nothing():
    from cad2program.model.decode import CONTINUATION_ROWS, scored_continuations
    from cad2program.reading import Recognition

    config = tiny()  # programs of up to 64 tokens: one sequence length to compile, every row count and width
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, max_len=64))
    recognizer = Recognizer(config, DrawingReader(config.model, nnx.Rngs(18)))
    shapes = recognizer.warm_up_rereading()
    compiled = scored_continuations._cache_size()
    assert shapes >= len(CONTINUATION_ROWS) and compiled >= shapes
    sheet = Sheet(200, 100)
    rect = Rectangle(20, 30, 30, 10)
    row = np.array(tokenizer.encode_primitive(rect, sheet) + [tokenizer.EOS])
    recognition = Recognition(sheet, [rect], [0.5], valid=True, tokens=row, spans=[(0, len(row) - 1)])
    images, _, _ = random_inputs(1)
    [reread] = recognizer.reread_sizes(images, [recognition], [[{"width": 34.04, "height": 10.1, "mm_per_px": 0.4}]])
    assert reread.primitives[0].width != 30  # it did re-read, on an already compiled shape
    assert scored_continuations._cache_size() == compiled


def test_a_recognizer_reads_the_written_numbers_with_the_text_finder_it_was_given(monkeypatch):
    import cad2program.reading.recognizer as recognizer_module
    from cad2program.errors import UserError

    asked = []
    monkeypatch.setattr(recognizer_module, "written_numbers", lambda image, finder="ink", ink=None: asked.append(finder) or ())
    blank = np.full((64, 64), 255, np.uint8)
    model = tiny_model()
    for finder in ("ink", "detector"):
        assert Recognizer(tiny(), model, text_finder=finder).written_on(blank) == ()
    assert asked == ["ink", "detector"]
    assert Recognizer(tiny(), model, read_text=False).written_on(blank) is None and len(asked) == 2
    with pytest.raises(UserError, match="ink, detector"):
        Recognizer(tiny(), model, text_finder="tesseract")


def test_a_model_fused_the_other_way_keeps_every_parameter_both_fusions_share():
    config = tiny()
    source = DrawingReader(config.model, nnx.Rngs(3))
    prefix_config, prefix = with_fusion(config, source, "prefix", seed=0)
    assert prefix_config.model.fusion == "prefix" and prefix.layers[0].cross_attn is None
    before, after = nnx.to_pure_dict(nnx.state(source)), nnx.to_pure_dict(nnx.state(prefix))
    shared = jax.tree_util.tree_leaves_with_path(after)
    assert len(shared) == len(jax.tree_util.tree_leaves(after))
    for path, value in shared:  # every prefix leaf exists in the source and was copied from it
        other = before
        for key in path:
            other = other[key.key]
        np.testing.assert_array_equal(value, other)
    # Back again: the cross-attention comes freshly initialised, the rest is still the source's.
    _, back = with_fusion(prefix_config, prefix, "cross_attention", seed=0)
    np.testing.assert_array_equal(back.lm_head.kernel[...], source.lm_head.kernel[...])
    assert back.layers[0].cross_attn is not None
