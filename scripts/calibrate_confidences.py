"""Fits a model's confidence power on held-out generated drawings and writes it into the model file.

    python scripts/calibrate_confidences.py cad2program/assets/default_model.msgpack --drawings 256

Training fits the power at every evaluation (`train.confidence_calibration`), on the model's own
output at its input size. What a user gets is that output re-measured on the full-size image
(`cad2program/refine/`), which matches more often at the same confidence, so this script fits the power on
that: held-out drawings rendered at 512 px (as the test sets are), recognised as `predict` does.
The drawings come from the held-out stream that training evaluates on (`train.EVAL_SEED`), never
from the test sets, so that confidences measured on the test sets afterwards
(scripts/confidence_bands.py) are an honest check of the fit.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flax import nnx
from tqdm import tqdm

from cad2program.contract import tokenizer
from cad2program.model.modelfile import export_model, load_model
from cad2program.reading import Recognizer, fit_confidence_power
from cad2program.evaluation.scoring import matched_flags
from cad2program.synth import GeneratorConfig, make_example
from cad2program.training.train import EVAL_SEED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an exported model file (.msgpack)")
    parser.add_argument("--drawings", type=int, default=256, help="held-out drawings to fit on (default 256)")
    parser.add_argument("--image-size", type=int, default=512, help="their longer side in pixels (default 512)")
    parser.add_argument("--out", type=Path, help="write the calibrated model here (default: over the input)")
    args = parser.parse_args(argv)
    config, model, extra = load_model(args.model)
    recognizer = Recognizer(config, model)  # no power yet: the raw confidences, refined as predict does
    generator = GeneratorConfig(style=config.style, long_side_px=args.image_size)
    confidences, matched = [], []
    index = 0
    with tqdm(total=args.drawings, desc="held-out drawings") as bar:
        while bar.n < args.drawings:
            example = make_example(EVAL_SEED, index, generator)
            index += 1
            if len(tokenizer.encode(example.sheet, example.primitives)) > config.max_tokens:
                continue  # as training's held-out set: only programs the model can write whole
            recognition = recognizer.recognize([example.image], [example.sheet])[0]
            confidences += recognition.confidences
            matched += matched_flags(recognition.primitives, example.primitives, example.sheet)
            bar.update(1)
    power = fit_confidence_power(confidences, matched)
    print(f"{args.model}: confidence power {extra.get('confidence_power', 1.0)} -> {power} "
          f"(fitted on {len(confidences)} primitives of {args.drawings} held-out drawings)")
    export_model(args.out or args.model, config, nnx.split(model)[1], {**extra, "confidence_power": power})
    return 0


if __name__ == "__main__":
    from cad2program.errors import UserError
    try:
        sys.exit(main())
    except UserError as err:  # a missing or unreadable model or folder: say which, no traceback
        sys.exit(f"error: {err}")
