"""The encoder's convolutions as matmuls against XLA's convolutions, in the whole train step; one JSON object.

    python3 benchmarks/bench_convolutions.py [--config cpu] [--rounds 3] [--steps 3]

`model.PatchEmbedding` computes its 3x3 stride-2 stem layers (those with more than one input channel)
and its patch embedding as matmuls over gathered windows. This script builds the real train step
twice, once as shipped and once with those layers computed by `nnx.Conv` (XLA's convolution), and
times them in alternation on the same batch. Same parameters, same sums; only the speed differs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform

import numpy as np


@contextlib.contextmanager
def xla_convolutions():
    """Makes the model compute its stem and patch layers with `nnx.Conv` itself."""
    from cad2program.model import network as model
    saved = model.conv_3x3_stride_2, model.patchify_matmul
    model.conv_3x3_stride_2 = model.patchify_matmul = lambda x, conv: conv(x)
    try:
        yield
    finally:
        model.conv_3x3_stride_2, model.patchify_matmul = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="cpu", help="named model config (default cpu)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two variants")
    parser.add_argument("--steps", type=int, default=3, help="timed train steps per round and variant")
    args = parser.parse_args()

    from cad2program.training.speed import train_throughput
    from cad2program.model.configs import get_config
    config = get_config(args.config)
    figures: dict[str, list[float]] = {"matmul": [], "xla_conv": []}
    fractions: dict[str, list[float]] = {"matmul": [], "xla_conv": []}
    for _ in range(args.rounds):
        for name in figures:
            with xla_convolutions() if name == "xla_conv" else contextlib.nullcontext():
                result = train_throughput(config, steps=args.steps, rounds=1)
            figures[name].append(result["samples_per_s"])
            fractions[name].append(result["flops_fraction"])
    ratios = [a / b for a, b in zip(figures["matmul"], figures["xla_conv"])]
    print(json.dumps({
        "config": args.config, "machine": platform.processor() or platform.machine(),
        "samples_per_s_matmul": round(float(np.median(figures["matmul"])), 2),
        "samples_per_s_xla_conv": round(float(np.median(figures["xla_conv"])), 2),
        "speedup_per_round": [round(r, 3) for r in ratios],
        "speedup_median": round(float(np.median(ratios)), 3),
        "flops_fraction_matmul": round(float(np.median(fractions["matmul"])), 3),
        "flops_fraction_xla_conv": round(float(np.median(fractions["xla_conv"])), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
