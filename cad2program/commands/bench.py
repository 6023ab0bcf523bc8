"""Measure training and decoding speed on this machine; prints one JSON object.

Figures: train_samples_per_s, train_flops_fraction (train step FLOP/s over this machine's large-matmul
FLOP/s, measured in the same run), decode_ms_per_drawing_b1, decode_drawings_per_s_b32,
naive_drawings_per_s_b32 (no KV cache: the decoder re-runs on the whole prefix per token) and
decode_speedup (their ratio), all for writing the program from the encoded image; the image encoder,
paid once per drawing either way, is timed separately and included in the end_to_end_* figures.
The model is randomly initialised (speed does not depend on the weights) and the end token is masked,
so every drawing decodes the same number of tokens.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="cpu", help="named config to measure: tiny, cpu or gpu (default: cpu)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and shorter programs (under a minute)")
    parser.add_argument("--out", help="also write the JSON to this file")


def run(args: argparse.Namespace) -> int:
    from cad2program.training.speed import run_bench
    from cad2program.model.configs import get_config
    from cad2program.errors import UserError
    from cad2program.outfile import output_problem, write_output

    try:
        config = get_config(args.config)
    except KeyError as err:
        raise UserError(str(err.args[0])) from None
    if args.out and output_problem(args.out):
        raise UserError(output_problem(args.out))
    figures = run_bench(config, quick=args.quick)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        write_output(args.out, text + "\n")
    return 0
