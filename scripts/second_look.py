"""Scores labelled folders with the second look at several log-probability thresholds, side by side.

The second look (`reading/second_look.py`) reads each drawing again with what the first reading found erased,
and keeps a new primitive when the first reading gives its tokens at least DEFAULT_SETTINGS.second_look_min_logprob
in its place, a polyline drawn alone on the ink (`refine.drawn_alone`) gaining DEFAULT_SETTINGS.drawn_alone_bonus.
This runs both readings once, then prints F1, precision and recall for each threshold and bonus
(`off`: the first reading alone), with how many primitives were added and how many of those match a
true one. Choose them on drawings that no test set shares, e.g. held-out generated ones:

    cad2program generate --out /tmp/heldout --count 150 --seed 1000003 --style mixed --size 512
    python3 scripts/second_look.py /tmp/heldout --thresholds -30 -25 -20 -17.5 -15 -12.5 -10
    python3 scripts/second_look.py /tmp/heldout --alone-bonus 0 10 15 20 22.5 25 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cad2program.contract.dataset import ImageError, load_image, load_labels
from cad2program.reading import Recognizer, stages_for
from cad2program.reading.ink_rules import without_uninked_circles
from cad2program.reading.second_look import with_alone_bonus, with_candidates
from cad2program.reading.settings import DEFAULT_SETTINGS
from cad2program.refine import drawn_alone
from cad2program.evaluation.scoring import matched_flags, score

CHUNK = 32


def read_twice(recognizer: Recognizer, folder: Path, bonuses: list[float]):
    """-> [(record, image, first recognition, {bonus: second-look candidates})] for every readable
    drawing of a folder."""
    records, problems = load_labels(folder)
    for problem in problems:
        print(f"warning: {folder}: {problem}", file=sys.stderr)
    readable = []
    for record in records:
        try:
            readable.append((record, load_image(record.image_path)))
        except ImageError as err:  # left out of every row alike
            print(f"warning: {folder}: labels.jsonl:{record.line_number}: {err} (left out)", file=sys.stderr)
    out = []
    for start in range(0, len(readable), CHUNK):
        chunk = [record for record, _ in readable[start:start + CHUNK]]
        images = [image for _, image in readable[start:start + CHUNK]]
        written = [recognizer.written_on(img) for img in images]  # once for both
        # As `Recognizer.recognize` does: candidates against the reading before the last stages, which
        # then run on the result (`with_candidates`, `without_uninked_circles`).
        drawings = recognizer.read(images, [r.sheet for r in chunk], written=written,
                                   stages=stages_for(recognizer, until="weigh ink evidence"))
        for record, image, drawing in zip(chunk, images, drawings):
            r, candidates = drawing.result, drawing.candidates
            alone = drawn_alone(image, r.sheet, [p for p, _, _ in candidates])  # traced once, whatever the bonuses
            out.append((record, image, r, {bonus: with_alone_bonus(candidates, alone, bonus) for bonus in bonuses}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, nargs="+", help="labelled dataset folders")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[DEFAULT_SETTINGS.second_look_min_logprob],
                        help=f"log-probability thresholds to try (default: the shipped {DEFAULT_SETTINGS.second_look_min_logprob})")
    parser.add_argument("--alone-bonus", type=float, nargs="+", default=[DEFAULT_SETTINGS.drawn_alone_bonus],
                        help=f"log-probability added to polylines drawn alone (default: the shipped {DEFAULT_SETTINGS.drawn_alone_bonus})")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    parser.add_argument("--no-ocr", dest="read_text", action="store_false", help="read sizes without OCR")
    args = parser.parse_args(argv)
    for folder in args.data:
        if not (folder / "labels.jsonl").is_file():
            print(f"error: {folder}: no labels.jsonl", file=sys.stderr)
            return 2
    recognizer = Recognizer.load(args.model, read_text=args.read_text, second_look=True)
    drawings = [d for folder in args.data for d in read_twice(recognizer, folder, args.alone_bonus)]
    print("| threshold | alone bonus | F1 | precision | recall | added | added and matched |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for threshold, bonus in [(None, None)] + [(t, b) for t in args.thresholds for b in args.alone_bonus]:
        items, added, good = [], 0, 0
        for record, image, first, candidates in drawings:
            read = first if threshold is None else with_candidates(first, candidates[bonus], threshold)
            result = without_uninked_circles(image, read)
            new = [p for p in result.primitives if p not in first.primitives]
            flags = matched_flags(result.primitives, record.primitives, record.sheet)
            added += len(new)
            good += sum(f for p, f in zip(result.primitives, flags) if p in new)
            items.append((result.primitives, record.primitives, record.sheet, record.extra.get("style")))
        report = score(items)
        name, shown_bonus = ("off", "–") if threshold is None else (f"{threshold:g}", f"{bonus:g}")
        print(f"| {name} | {shown_bonus} | {report['f1']:.4f} | {report['precision']:.4f} | {report['recall']:.4f} | {added} | {good} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
