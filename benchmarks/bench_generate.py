"""Generator speed per style and program lengths; prints one JSON object.

    python3 benchmarks/bench_generate.py [--size 256] [--seconds 4] [--drawings 2000]

Speed is `make_example` calls per CPU second of this one process (OpenCV held to one thread), so it
reads as drawings per second per core and stays meaningful on a busy machine; wall-clock rates are
reported beside it. Tokens: `len(tokenizer.encode(sheet, primitives))` over the default config (mixed, 512 px).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np

from cad2program.contract import tokenizer
from cad2program.synth import STYLES, GeneratorConfig, make_example, make_labels


def rate(style: str, size: int, seconds: float, warmup: int = 20) -> dict:
    config = GeneratorConfig(style=style, long_side_px=size)
    for index in range(warmup):  # warm up: fonts and the glyph cache (it fills over ~1500 drawings)
        make_example(999, index, config)
    cpu0, wall0, count = time.process_time(), time.perf_counter(), 0
    while time.process_time() - cpu0 < seconds:
        make_example(1, count, config)
        count += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"per_cpu_second": round(count / cpu, 1), "per_wall_second": round(count / wall, 1), "drawings": count}


def token_lengths(drawings: int) -> dict:
    config = GeneratorConfig()  # the default: mixed, 512 px (labels only; they equal make_example's)
    lengths = []
    for index in range(drawings):
        sheet, primitives, _ = make_labels(0, index, config)
        lengths.append(len(tokenizer.encode(sheet, primitives)))
    return {"mean": round(float(np.mean(lengths)), 1), "p95": int(np.percentile(lengths, 95)),
            "max": int(max(lengths)), "drawings": drawings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="longer image side in px (default 256)")
    parser.add_argument("--seconds", type=float, default=4.0, help="CPU seconds per style (default 4)")
    parser.add_argument("--drawings", type=int, default=2000, help="drawings for the token statistics")
    parser.add_argument("--warmup", type=int, default=20,
                        help="drawings made before timing each style (default 20: a fresh process; 1500 gives the "
                             "steady state of a long stream such as training, once the glyph cache has filled)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    result = {
        "size_px": args.size,
        "warmup_drawings": args.warmup,
        "drawings_per_second_per_core": {style: rate(style, args.size, args.seconds, args.warmup) for style in STYLES},
        "tokens_per_drawing_mixed": token_lengths(args.drawings),
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
