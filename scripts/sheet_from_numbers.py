"""Reads labelled drawings without their sheet sizes, as `predict image.png` without --sheet does, and
scores the result against the true programs (on the true sheets): the sheet assumed from the image's
shape (no OCR) beside the sheet found from the written numbers (`reading.sizes.sheet_from_numbers`).

    python3 scripts/sheet_from_numbers.py 40 testsets/clean testsets/photo testsets/ezdxf

Prints per folder and way: how many sheets came out within 2 mm of the truth, F1, and matched sizes exact.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cad2program.contract.dataset import load_image
from cad2program.contract.program import Sheet, primitive_from_json
from cad2program.reading import Recognizer
from cad2program.evaluation.scoring import match_primitives


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="drawings from the start of each folder")
    parser.add_argument("folders", type=Path, nargs="+", help="labelled dataset folders")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    args = parser.parse_args(argv)
    recognizer = Recognizer.load(args.model)
    print("| folder | sheet | sheets within 2 mm | F1 | sizes exact |\n| --- | --- | --- | --- | --- |")
    for folder in args.folders:
        if not (folder / "labels.jsonl").exists():
            print(f"error: {folder}: no labels.jsonl (a labelled dataset folder is needed)")
            return 1
        labels = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()[:args.count]]
        images = [load_image(folder / label["image"]) for label in labels]
        for read_text in (False, True):
            recognizer.read_text = read_text
            matched = predicted = true_count = exact = sized = right = 0
            for recognition, label in zip(recognizer.recognize(images, None), labels):
                true = [primitive_from_json(p) for p in label["primitives"]]
                sheet = Sheet.from_json(label["sheet"])
                right += abs(recognition.sheet.width - sheet.width) <= 2 and abs(recognition.sheet.height - sheet.height) <= 2
                pairs = match_primitives(recognition.primitives, true, sheet)
                matched, predicted, true_count = matched + len(pairs), predicted + len(recognition.primitives), true_count + len(true)
                for i, j in pairs:
                    for field in type(true[j]).SIZE_FIELDS:
                        sized += 1
                        exact += abs(getattr(recognition.primitives[i], field) - getattr(true[j], field)) < 1e-6
            f1 = 2 * matched / max(predicted + true_count, 1)
            way = "found from the numbers" if read_text else "assumed (297 mm long side)"
            print(f"| {folder.name} | {way} | {right} of {len(labels)} | {f1:.3f} | {exact} of {sized} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
