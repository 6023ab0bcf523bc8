"""Measures how far the ink's sizes stray from the true ones, in pixels, per primitive type.

`Recognizer.reread_sizes` weighs each candidate size by a Gaussian of its distance from the ink's
measurement; its spread (`recognizer.INK_SIGMA_PX`) comes from here. Held-out generated drawings (the
evaluation stream, never trained on) at 512 px, as the test sets are; each true primitive is displaced
as the model's guesses are (position up to half the matching tolerance, sizes a few per cent) and
re-measured with `refine.measure_primitives`. No model is needed.

    python3 scripts/ink_spread.py --drawings 200
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict

import numpy as np
from tqdm import tqdm

from cad2program.contract.program import Arc, Circle, Polyline, Rectangle
from cad2program.refine import measure_primitives
from cad2program.contract.geometry import tolerance
from cad2program.synth import GeneratorConfig, make_example
from cad2program.training.train import EVAL_SEED


def displaced(primitive, t: float, rng: np.random.Generator):
    """The primitive as a model might guess it: moved up to t / 2, sizes off by up to 4%."""
    if isinstance(primitive, Polyline):
        return primitive
    changes = {}
    for field in ("x", "y", "x1", "y1", "x2", "y2"):
        if hasattr(primitive, field):
            changes[field] = round(getattr(primitive, field) + rng.uniform(-t / 2, t / 2), 1)
    for field in type(primitive).SIZE_FIELDS:
        changes[field] = round(getattr(primitive, field) * rng.uniform(0.96, 1.04), 1)
    return dataclasses.replace(primitive, **changes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drawings", type=int, default=200, help="held-out drawings (default 200)")
    parser.add_argument("--image-size", type=int, default=512, help="their longer side in pixels (default 512)")
    parser.add_argument("--part-share", type=float, default=GeneratorConfig.part_share,
                        help=f"share of part-like drawings (default {GeneratorConfig.part_share}; 0: scattered only)")
    args = parser.parse_args(argv)
    generator = GeneratorConfig(long_side_px=args.image_size, part_share=args.part_share)
    rng = np.random.default_rng(0)
    residuals: dict[str, list[float]] = defaultdict(list)
    for index in tqdm(range(args.drawings), desc="held-out drawings"):
        example = make_example(EVAL_SEED, index, generator)
        t = tolerance(example.sheet)
        guesses = [displaced(p, t, rng) for p in example.primitives]
        _, sizes = measure_primitives(example.image, example.sheet, guesses)
        for truth, measured in zip(example.primitives, sizes):
            for field in type(truth).SIZE_FIELDS:
                if field in measured:
                    residuals[type(truth).__name__].append((measured[field] - getattr(truth, field)) / measured["mm_per_px"])
    print(f"{'type':<10} {'sizes':>6} {'mean px':>8} {'std px':>7} {'robust std':>10} {'|e| > 2 px':>10}")
    for name in (Rectangle.__name__, Circle.__name__, Arc.__name__):
        e = np.array(residuals[name])
        if len(e):
            robust = 1.4826 * np.median(np.abs(e - np.median(e)))
            print(f"{name:<10} {len(e):>6} {e.mean():>8.2f} {e.std():>7.2f} {robust:>10.2f} {(np.abs(e) > 2).mean():>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
