"""Which confidence floor to keep primitives at: F1 of each set with the primitives below it dropped.

    python3 scripts/eval_battery.py --no-own --predictions preds/      # read the dev halves once
    python3 scripts/confidence_floor.py preds/ testsets/battery/*/dev
    python3 scripts/confidence_floor.py preds/ testsets/battery/*/dev --floors 0 0.1 0.2 0.3

Reads the prediction files that `eval_battery.py --predictions` (DIR/SET-HALF.jsonl) or `eval --out`
(DIR/FOLDER.jsonl) write, drops from each drawing the primitives whose confidence is under the floor,
and scores what is left exactly as `cad2program eval` does (`scoring.score`; sets named `real-*` as
geometry only). Prints one row per floor: each set's F1, the worst and the mean. The drawings are not
read again, so a sweep takes seconds. Decide on dev halves only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cad2program.evaluation.scoring import pair_predictions, read_predictions, score  # noqa: E402

FLOORS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)


def prediction_file(predictions: Path, truth: Path) -> Path:
    """The prediction file for a truth folder: a file as given, or in a folder SET-HALF.jsonl or FOLDER.jsonl."""
    if not predictions.is_dir():
        return predictions
    truth = truth.resolve()
    for name in (f"{truth.parent.name}-{truth.name}.jsonl", f"{truth.name}.jsonl"):
        if (predictions / name).is_file():
            return predictions / name
    raise SystemExit(f"error: no prediction file for {truth} in {predictions}")


def scored_items(path: Path, truth: Path) -> list[tuple]:
    """(pairs of a primitive and its confidence, or None; truth primitives; sheet; style) per labelled drawing."""
    items, problems = pair_predictions(path, truth)
    for problem in problems:
        print(f"warning: {path}: {problem}", file=sys.stderr)
    lines, _ = read_predictions(path)
    out = []
    for key, (predicted, true, sheet, style) in items:
        confidences = (lines.get(key) or {}).get("confidences") or []
        if predicted is not None and len(confidences) != len(predicted):
            raise SystemExit(f"error: {path}: {key}: not one confidence per primitive")
        out.append((None if predicted is None else list(zip(predicted, confidences)), true, sheet, style))
    return out


def f1_at(items: list[tuple], floor: float, geometry_only: bool) -> float:
    kept = [(None if pairs is None else [p for p, c in pairs if c >= floor], true, sheet, style)
            for pairs, true, sheet, style in items]
    return score(kept, geometry_only)["f1"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path, help="a prediction .jsonl, or a folder of them")
    parser.add_argument("truth", type=Path, nargs="+", help="the labelled folders the predictions are for")
    parser.add_argument("--floors", type=float, nargs="+", default=FLOORS,
                        help="the floors to try (default %(default)s)")
    args = parser.parse_args(argv)
    sets = [(f"{t.resolve().parent.name}/{t.resolve().name}", scored_items(prediction_file(args.predictions, t), t),
             t.resolve().parent.name.startswith("real-")) for t in args.truth]
    names = [name for name, _, _ in sets]
    width = max(len(n) for n in names) + 2
    print("floor " + "".join(f"{n:>{width}}" for n in names) + f"{'worst':>8}{'mean':>8}")
    for floor in args.floors:
        f1s = [f1_at(items, floor, geometry_only) for _, items, geometry_only in sets]
        print(f"{floor:5.2f} " + "".join(f"{f:>{width}.3f}" for f in f1s)
              + f"{min(f1s):>8.3f}{sum(f1s) / len(f1s):>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
