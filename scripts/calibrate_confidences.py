"""Fits a model's confidence power on held-out generated drawings and writes it into the model file.

    python scripts/calibrate_confidences.py cad2program/assets/default_model.msgpack --drawings 256

Training does this at every evaluation (`train.confidence_calibration`); this script does it for a
model exported before that, or on more drawings. The drawings come from the held-out stream that
training evaluates on (`train.EVAL_SEED`), never from the test sets, so that confidences measured on
the test sets afterwards (scripts/confidence_bands.py) are an honest check of the fit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flax import nnx

from cad2program.recognizer import Recognizer, export_model, load_model
from cad2program.train import confidence_calibration, evaluate, synthetic_eval_set


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an exported model file (.msgpack)")
    parser.add_argument("--drawings", type=int, default=256, help="held-out drawings to fit on (default 256)")
    parser.add_argument("--out", type=Path, help="write the calibrated model here (default: over the input)")
    args = parser.parse_args(argv)
    config, model, extra = load_model(args.model)
    eval_set = synthetic_eval_set(config, args.drawings)
    _, recognitions = evaluate(Recognizer(config, model), eval_set)  # no power yet: the raw confidences
    calibration = confidence_calibration(recognitions, eval_set)
    print(f"{args.model}: confidence power {extra.get('confidence_power', 1.0)} -> "
          f"{calibration['confidence_power']} (fitted on {args.drawings} held-out drawings)")
    export_model(args.out or args.model, config, nnx.split(model)[1], {**extra, **calibration})
    return 0


if __name__ == "__main__":
    sys.exit(main())
