"""One reading setting at several values, side by side, on labelled folders: F1 per set, worst and mean.

    python3 scripts/sweep_setting.py testsets/battery/*/dev --setting repeat_circle_inked \\
        --values 0.85 0.9 0.95 2 --from-stage "repeat circles"

Each drawing is read once through the stages before `--from-stage` (`pipeline.STAGE_NAMES`); the
stages from it on then run again for each value of the setting (`reading.settings.ReadingSettings`),
so a sweep of a late stage costs about one reading. A setting that an earlier stage reads needs an
earlier `--from-stage` (default: the first stage, i.e. a full reading per value). Sets named `real-*`
are scored geometry only, as `eval_battery.py` scores them. Decide on dev halves only.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cad2program.contract.dataset import ImageError, load_image, load_labels  # noqa: E402
from cad2program.evaluation.scoring import score  # noqa: E402
from cad2program.reading import Recognizer  # noqa: E402
from cad2program.reading.pipeline import STAGE_NAMES, run_stages  # noqa: E402

CHUNK = 16


def copied(drawing):
    """A drawing whose looks the later stages can change without touching the original."""
    out = copy.copy(drawing)
    out.first = copy.copy(drawing.first)
    out.second = copy.copy(drawing.second)
    out.candidates = list(drawing.candidates)
    return out


def read_until(recognizer: Recognizer, folder: Path, stages) -> list:
    """(record, drawing read through `stages`) for each readable drawing of a labelled folder."""
    records, problems = load_labels(folder)
    for problem in problems:
        print(f"warning: {folder}: {problem}", file=sys.stderr)
    out = []
    for start in range(0, len(records), CHUNK):
        chunk, images = [], []
        for record in records[start:start + CHUNK]:
            try:
                images.append(load_image(record.image_path))
                chunk.append(record)
            except ImageError as err:  # left out of every row alike
                print(f"warning: {folder}: labels.jsonl:{record.line_number}: {err} (left out)", file=sys.stderr)
        out += zip(chunk, recognizer.read(images, [r.sheet for r in chunk], stages=stages))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+", help="labelled dataset folders")
    parser.add_argument("--setting", required=True, help="a ReadingSettings field holding a number")
    parser.add_argument("--values", type=float, nargs="+", required=True, help="the values to try")
    parser.add_argument("--from-stage", default=STAGE_NAMES[0], choices=STAGE_NAMES, metavar="STAGE",
                        help="the first stage that reads the setting (default: the first stage)")
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    args = parser.parse_args(argv)
    for folder in args.data:
        if not (folder / "labels.jsonl").is_file():
            parser.error(f"{folder}: no labels.jsonl")
    recognizer = Recognizer.load(args.model)
    fields = {f.name: f for f in dataclasses.fields(recognizer.settings)}
    if args.setting not in fields or not isinstance(getattr(recognizer.settings, args.setting), (int, float)):
        parser.error(f"--setting {args.setting}: not a numeric reading setting "
                     f"(one of {', '.join(n for n in fields if n != 'version')})")
    stages = recognizer.stages
    split = next((k for k, s in enumerate(stages) if s.name == args.from_stage), None)
    if split is None:
        parser.error(f"--from-stage {args.from_stage!r}: this recognizer does not run it")
    before, after = stages[:split], stages[split:]
    sets = [(folder, folder.resolve().parent.name.startswith("real-"), read_until(recognizer, folder, before))
            for folder in args.data]
    names = [f"{f.resolve().parent.name}/{f.resolve().name}" for f, _, _ in sets]
    width = max(12, *(len(n) + 2 for n in names))
    print(f"{args.setting:>24}" + "".join(f"{n:>{width}}" for n in names) + f"{'worst':>8}{'mean':>8}")
    original = recognizer.settings
    for value in args.values:
        recognizer.settings = dataclasses.replace(original, **{args.setting: value})
        f1s = []
        for _, geometry_only, read in sets:
            drawings = [copied(d) for _, d in read]
            run_stages(recognizer, drawings, after)
            f1s.append(score([(d.result.primitives if d.result.valid else None, r.primitives, r.sheet,
                               r.extra.get("style")) for (r, _), d in zip(read, drawings)], geometry_only)["f1"])
        print(f"{value:>24g}" + "".join(f"{f:>{width}.3f}" for f in f1s)
              + f"{min(f1s):>8.3f}{sum(f1s) / len(f1s):>8.3f}")
    recognizer.settings = original
    return 0


if __name__ == "__main__":
    sys.exit(main())
