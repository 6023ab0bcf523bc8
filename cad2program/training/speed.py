"""Side-by-side speed figures for one machine, measured in one run (ratios survive a noisy machine).

- the FLOP/s this machine reaches on a large float32 matmul (the reference for `train_flops_fraction`);
- training throughput and the share of that peak the jit-compiled train step reaches (its FLOPs come
  from XLA's cost analysis of the compiled step; peak and step are measured in alternation);
- decoding: the compiled KV-cache loop at batch 1 and 32, against a loop that re-runs the decoder
  on the whole prefix for every token (no cache), on exactly the same tokens; the image encoder's
  share (paid once per drawing by both) is reported separately and in the end-to-end figures.
For decoding, the end token is masked so that every drawing decodes the same number of tokens
(a random model would otherwise stop at an arbitrary point): the figures are per fixed-length program.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from cad2program.contract import tokenizer
from cad2program.model.configs import TrainConfig
from cad2program.model.decode import DecodeOptions, Grammar, default_grammar, embed_images, generate, generate_uncached
from cad2program.contract.program import Sheet
from cad2program.model.modelfile import build_model
from cad2program.training.train import make_optimizer, make_train_step


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up / compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_flops_per_s(size: int = 2048, repeats: int = 5) -> float:
    a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    seconds = best_time(lambda: matmul(a, a).block_until_ready(), repeats)
    return 2 * size ** 3 / seconds


def _compiled_flops(compiled) -> float:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", 0.0))


def train_throughput(config: TrainConfig, steps: int, rounds: int = 3, program_tokens: int = 64) -> dict:
    """Samples/s of the real train step, and its FLOP/s as a share of the matmul peak.

    The peak and the step are measured in alternation (`rounds` times, a few steps each) and the share
    is the median of the per-round ratios: on a shared machine the reachable FLOP/s drifts, and a
    ratio of two measurements taken minutes apart would mostly measure that drift.
    """
    model = build_model(config)
    graphdef, params = nnx.split(model)
    optimizer = make_optimizer(config)
    opt_state = optimizer.init(params)
    rng = np.random.default_rng(0)
    size, batch = config.model.image_size, config.batch_size
    tokens = rng.integers(tokenizer.VALUE0, tokenizer.VALUE0 + 200, (batch, program_tokens)).astype(np.int32)
    tokens[:, :tokenizer.PROMPT_LENGTH] = tokenizer.encode_prompt(Sheet(200, 150))
    data = {"image": jnp.asarray(rng.random((batch, size, size, 1), np.float32)), "tokens": jnp.asarray(tokens)}
    if config.keypoint_grid:
        grid = config.keypoint_grid
        data["keypoints"] = jnp.asarray(rng.integers(0, config.model.keypoint_classes, (batch, grid, grid)), jnp.int32)
    step_fn = make_train_step(graphdef, optimizer, value_label_sigma=config.value_label_sigma,
                              keypoint_weight=config.keypoint_weight)
    compiled = step_fn.lower(params, opt_state, data).compile()
    flops = _compiled_flops(compiled)
    params, opt_state, metrics = compiled(params, opt_state, data)  # warm-up
    jax.block_until_ready(metrics)
    step_seconds, peaks, shares = [], [], []
    for _ in range(rounds):
        peak = matmul_flops_per_s(repeats=3)
        start = time.perf_counter()
        for _ in range(steps):
            params, opt_state, metrics = compiled(params, opt_state, data)
        jax.block_until_ready(metrics)
        seconds = (time.perf_counter() - start) / steps
        step_seconds.append(seconds)
        peaks.append(peak)
        shares.append(flops / seconds / peak)
    seconds = float(np.median(step_seconds))
    return {"samples_per_s": batch / seconds, "flops_per_s": flops / seconds, "step_flops": flops,
            "peak_flops_per_s": float(np.median(peaks)), "flops_fraction": float(np.median(shares)),
            "flops_fraction_per_round": [round(x, 3) for x in shares]}


def fixed_length_grammar() -> Grammar:
    """The program grammar with the end token forbidden: every sequence runs to max_new_tokens."""
    grammar = default_grammar()
    table = grammar.table.copy()
    table[:, grammar.eos] = -1
    return dataclasses.replace(grammar, table=table)


def decode_figures(config: TrainConfig, new_tokens: int, repeats: int) -> dict:
    """Decoding speed, cached vs uncached, on the same images and the same tokens.

    `decode_*` and `naive_*` time the generation of the program from the encoded image (what a KV
    cache changes); `end_to_end_*` add the image encoder, which both pay once per drawing.
    """
    split = nnx.split(build_model(config))
    grammar = fixed_length_grammar()
    options = DecodeOptions(max_new_tokens=new_tokens)
    size = config.model.image_size
    rng = np.random.default_rng(1)
    figures = {}
    for batch in (1, 32):
        images = rng.random((batch, size, size, 1), np.float32)
        prompts = np.array([tokenizer.encode_prompt(Sheet(200, 150))] * batch, np.int32)
        memory = jax.block_until_ready(embed_images(split, images))
        encode_s = best_time(lambda: jax.block_until_ready(embed_images(split, images)), repeats)
        cached_s = best_time(lambda: generate(split, None, prompts, grammar, options, memory=memory), repeats)
        figures[batch] = {"encode_s": encode_s, "cached_s": cached_s}
        if batch == 32:
            figures[batch]["naive_s"] = best_time(
                lambda: generate_uncached(split, None, prompts, grammar, new_tokens, memory=memory), 1)
            # The two loops must produce the same tokens for the comparison to mean anything.
            figures["same"] = bool(np.array_equal(
                generate(split, None, prompts, grammar, options, memory=memory)[0],
                generate_uncached(split, None, prompts, grammar, new_tokens, memory=memory)))
    b1, b32 = figures[1], figures[32]
    return {"decode_ms_per_drawing_b1": 1000 * b1["cached_s"],
            "decode_drawings_per_s_b32": 32 / b32["cached_s"],
            "naive_drawings_per_s_b32": 32 / b32["naive_s"],
            "decode_speedup": b32["naive_s"] / b32["cached_s"],
            "encode_ms_per_drawing_b1": 1000 * b1["encode_s"],
            "end_to_end_ms_per_drawing_b1": 1000 * (b1["encode_s"] + b1["cached_s"]),
            "end_to_end_drawings_per_s_b32": 32 / (b32["encode_s"] + b32["cached_s"]),
            "end_to_end_speedup": (b32["encode_s"] + b32["naive_s"]) / (b32["encode_s"] + b32["cached_s"]),
            "decode_tokens_per_drawing": new_tokens,
            "cached_equals_naive": figures["same"]}


def run_bench(config: TrainConfig, quick: bool = False) -> dict:
    train = train_throughput(config, steps=2 if quick else 3, rounds=2 if quick else 4)
    decode = decode_figures(config, new_tokens=32 if quick else 64, repeats=1 if quick else 3)
    return {"config": config.name, "backend": jax.default_backend(), "devices": jax.device_count(),
            "matmul_gflops": train["peak_flops_per_s"] / 1e9,
            "train_samples_per_s": train["samples_per_s"],
            "train_gflops": train["flops_per_s"] / 1e9,
            "train_flops_fraction": train["flops_fraction"],
            "train_flops_fraction_per_round": train["flops_fraction_per_round"],
            "train_batch_size": config.batch_size,
            **decode}
