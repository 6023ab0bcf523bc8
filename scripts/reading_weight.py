"""Scores a dataset folder with several weights of the model's digit reading against the ink's evidence.

`Recognizer.reread_sizes` picks each size as the value that maximises
READING_WEIGHT * log p(digits | image, program so far) + log p(ink's measurement | value)
+ the OCR's bonus for a value written near the primitive (WRITTEN_BONUS, less DISTANCE_WEIGHT per
tolerance away). The model is over-confident in what it reads at 256 px, so its weight is below 1;
this measures where, and how much the OCR's numbers should weigh (--bonus, --distance: one row per
combination). Use drawings that no test set shares, e.g. held-out generated ones:

    cad2program generate --out /tmp/heldout --count 150 --seed 1000003 --style mixed --size 512
    python3 scripts/reading_weight.py /tmp/heldout 1.0 0.6 0.3 0.2 0.1
    python3 scripts/reading_weight.py /tmp/heldout 0.3 --bonus 0 2 4 8
    python3 scripts/reading_weight.py /tmp/heldout 0.3 --distance 0 0.25 0.5 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import itertools
import json
import tempfile
from pathlib import Path

import numpy as np

import dataclasses

import cad2program.reading.recognizer as recognizer
from cad2program.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a labelled dataset folder")
    parser.add_argument("weights", type=float, nargs="+", help="reading weights to try")
    parser.add_argument("--bonus", type=float, nargs="+", default=[recognizer.DEFAULT_SETTINGS.written_bonus],
                        help=f"OCR bonuses to try (default: the shipped {recognizer.DEFAULT_SETTINGS.written_bonus})")
    parser.add_argument("--distance", type=float, nargs="+", default=[recognizer.DEFAULT_SETTINGS.distance_weight],
                        help=f"bonus lost per tolerance between a number's text and the primitive "
                             f"(default: the shipped {recognizer.DEFAULT_SETTINGS.distance_weight})")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    args = parser.parse_args(argv)
    read = recognizer.written_numbers
    read_once = functools.lru_cache(maxsize=None)(lambda key, finder, unhashed: read(unhashed.image, finder))
    recognizer.written_numbers = (  # OCR each image once
        lambda image, finder="ink", ink=None: read_once(_digest(image), finder, _Unhashed(image)))  # ink: the same either way
    shipped = recognizer.DEFAULT_SETTINGS
    print("| reading weight | OCR bonus | distance weight | size exactness | drawing accuracy | F1 |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for weight, bonus, distance in itertools.product(args.weights, args.bonus, args.distance):
        # The settings a model file without its own reads with, for this process only.
        recognizer.DEFAULT_SETTINGS = dataclasses.replace(shipped, reading_weight=weight, written_bonus=bonus,
                                                          distance_weight=distance)
        with tempfile.TemporaryDirectory() as tmp:
            report_path = Path(tmp) / "report.json"
            command = ["eval", "--data", str(args.data), "--batch-size", "32", "--report", str(report_path)]
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                code = cli(command + (["--model", str(args.model)] if args.model else []))
            if code:
                print(f"error: eval failed on {args.data} (exit {code}); run `cad2program {' '.join(command)}` to see why")
                return code
            overall = json.loads(report_path.read_text())
        cells = ["n/a" if overall[k] is None else f"{overall[k]:.3f}" for k in ("size_exactness", "drawing_accuracy", "f1")]
        print(f"| {weight} | {bonus} | {distance} | " + " | ".join(cells) + " |")
    return 0


def _digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class _Unhashed:
    """An image passed through lru_cache: only the key beside it is compared."""

    def __init__(self, image: np.ndarray):
        self.image = image

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other) -> bool:
        return True


if __name__ == "__main__":
    raise SystemExit(main())
