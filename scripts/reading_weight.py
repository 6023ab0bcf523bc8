"""Scores a dataset folder with several weights of the model's digit reading against the ink's evidence.

`Recognizer.reread_sizes` picks each size as the value that maximises
READING_WEIGHT * log p(digits | image, program so far) + log p(ink's measurement | value). The model is
over-confident in what it reads at 256 px, so the weight is below 1; this measures where. Use drawings
that no test set shares, e.g. held-out generated ones:

    cad2program generate --out /tmp/heldout --count 150 --seed 1000003 --style mixed --size 512
    python3 scripts/reading_weight.py /tmp/heldout 1.0 0.6 0.3 0.2 0.1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

import cad2program.recognizer as recognizer
from cad2program.cli import main as cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="a labelled dataset folder")
    parser.add_argument("weights", type=float, nargs="+", help="reading weights to try")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    args = parser.parse_args(argv)
    print("| reading weight | size exactness | drawing accuracy | F1 |\n| --- | --- | --- | --- |")
    for weight in args.weights:
        recognizer.READING_WEIGHT = weight
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
        print(f"| {weight} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
