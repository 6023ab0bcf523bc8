"""How many of the true sizes of labelled drawings the OCR reads somewhere on them, and how fast.

    python3 scripts/ocr_recall.py 20 testsets/clean testsets/sketch testsets/scan testsets/photo testsets/ezdxf
    python3 scripts/ocr_recall.py 20 testsets/clean --finders detector --detection-side 512
    python3 scripts/ocr_recall.py 50 testsets/battery/*/dev --finders ink --recognition-min-widths 320 48

A size counts as read when its written value (a circle's diameter, an arc's radius, a rectangle's
width or height) is among `ocr.written_numbers` of its drawing: the recall that bounds what
re-reading sizes can gain from the OCR; "other values" counts the values read that are no true size
of the drawing (noise that re-reading must outweigh). Prints one table row per folder, text finder
and recogniser width (all given, each drawing read by one way after the other, so that all meet the
same machine load).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cad2program.commands.reader_options import positive_int
from cad2program.reading import ocr
from cad2program.contract.dataset import load_image
from cad2program.contract.program import Circle, primitive_from_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("count", type=int, help="drawings from the start of each folder")
    parser.add_argument("folders", type=Path, nargs="+", help="labelled dataset folders")
    parser.add_argument("--detection-side", type=int, default=ocr.DETECTION_SIDE,
                        help=f"the detector's shorter side in pixels (default {ocr.DETECTION_SIDE})")
    parser.add_argument("--finders", nargs="+", choices=ocr.TEXT_FINDERS, default=list(ocr.TEXT_FINDERS),
                        help="where the OCR looks for text (default: both, side by side)")
    parser.add_argument("--recognition-min-widths", type=positive_int, nargs="+", default=[ocr.RECOGNITION_MIN_WIDTH],
                        help="the recogniser's least padded width in pixels, one or more side by side "
                             f"(default {ocr.RECOGNITION_MIN_WIDTH})")
    args = parser.parse_args(argv)
    if not ocr.available():
        print("error: rapidocr_onnxruntime is not installed (./install.sh installs it)")
        return 1
    ways = [(finder, width) for finder in args.finders for width in args.recognition_min_widths]
    print("| folder | text finder | recogniser width | sizes read | of | recall | other values | s / drawing |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in args.folders:
        if not (folder / "labels.jsonl").exists():
            print(f"error: {folder}: no labels.jsonl (a labelled dataset folder is needed)")
            return 1
        found, others, seconds = dict.fromkeys(ways, 0), dict.fromkeys(ways, 0), dict.fromkeys(ways, 0.0)
        total = 0
        labels = [json.loads(line) for line in (folder / "labels.jsonl").read_text().splitlines()[:args.count]]
        for label in labels:
            image = load_image(folder / label["image"])
            sizes = [round(getattr(p, field) * (2 if isinstance(p, Circle) else 1), 1)
                     for p in map(primitive_from_json, label["primitives"]) for field in type(p).SIZE_FIELDS]
            total += len(sizes)
            for way in ways:
                finder, width = way
                ocr.configure(args.detection_side, width)  # a new engine only when the values change
                started = time.perf_counter()
                values = {n.value for n in ocr.written_numbers(image, finder)}
                seconds[way] += time.perf_counter() - started
                found[way] += sum(size in values for size in sizes)
                others[way] += len(values - set(sizes))
        name = f"{folder.parent.name}/{folder.name}" if folder.name in ("dev", "test") else folder.name
        for way in ways:
            print(f"| {name} | {way[0]} | {way[1]} | {found[way]} | {total} | {found[way] / max(total, 1):.3f} "
                  f"| {others[way]} | {seconds[way] / max(len(labels), 1):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
