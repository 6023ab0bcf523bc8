"""How far a model's confidences can be trusted: precision of predicted primitives per confidence band.

    cad2program eval --data testsets/clean testsets/sketch --out preds/
    python scripts/confidence_bands.py preds/ testsets/clean testsets/sketch

Reads the prediction files that `eval --out` or `predict --out` write (each line has `primitives`
and one `confidences` entry per primitive), matches every drawing against its truth as the scorer
does (`scoring.matched_flags`), and prints a Markdown table: for each band of confidence, how
many primitives were predicted, how many matched a true one, and that share (precision) beside the
band's mean confidence. A well-calibrated model has the two close in every band; the overlay's
colours (green >= 0.9, orange 0.6-0.9, red < 0.6) then mean what they say. The last line gives the
expected calibration error: the gap between confidence and precision, averaged over primitives.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cad2program.contract.dataset import load_labels
from cad2program.evaluation.scoring import matched_flags, prediction_primitives, read_predictions

BANDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
OVERLAY_BANDS = (0.0, 0.6, 0.9, 1.0)  # the overlay's red, orange, green


def matched_confidences(prediction_file: Path, truth_folder: Path) -> list[tuple[float, bool]]:
    """(confidence, matched a true primitive) for every predicted primitive that has a confidence."""
    predictions, problems = read_predictions(prediction_file)
    truths, truth_problems = load_labels(truth_folder, check_images=False)
    for problem in truth_problems + problems:
        print(f"warning: {problem}", file=sys.stderr)
    out = []
    for record in truths:
        line = predictions.get(record.image_key)
        if line is None:
            continue
        primitives, why = prediction_primitives(line, record.sheet)
        confidences = line.get("confidences")
        if primitives is None or not isinstance(confidences, list) or len(confidences) != len(primitives):
            print(f"warning: {prediction_file}: {record.image_key}: "
                  f"{why or 'no confidence for each primitive'}; skipped", file=sys.stderr)
            continue
        out += [(float(c), m) for c, m in zip(confidences, matched_flags(primitives, record.primitives, record.sheet))]
    return out


def band_rows(pairs: list[tuple[float, bool]], edges: tuple[float, ...]) -> list[tuple[str, int, int, float, float]]:
    """(band, predicted, matched, mean confidence, precision) for each non-empty band."""
    rows = []
    for low, high in zip(edges, edges[1:]):
        last = high == edges[-1]
        inside = [(c, m) for c, m in pairs if low <= c < high or (last and c == high)]
        if inside:
            matched = sum(m for _, m in inside)
            rows.append((f"{low:.1f}–{high:.1f}", len(inside), matched,
                         sum(c for c, _ in inside) / len(inside), matched / len(inside)))
    return rows


def calibration_error(pairs: list[tuple[float, bool]], edges: tuple[float, ...] = BANDS) -> float:
    """Expected calibration error: |mean confidence - precision| per band, weighted by its size."""
    return sum(n * abs(conf - precision) for _, n, _, conf, precision in band_rows(pairs, edges)) / len(pairs)


def table(pairs: list[tuple[float, bool]], edges: tuple[float, ...]) -> str:
    lines = ["| confidence | predicted | matched | mean confidence | precision |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {band} | {n} | {m} | {conf:.2f} | {precision:.2f} |"
              for band, n, m, conf, precision in band_rows(pairs, edges)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions", type=Path,
                        help="a prediction .jsonl, or a folder of NAME.jsonl files (as eval --out writes)")
    parser.add_argument("truth", type=Path, nargs="+", help="the labelled folders the predictions are for")
    args = parser.parse_args(argv)
    pairs = []
    for folder in args.truth:
        path = args.predictions / f"{folder.resolve().name}.jsonl" if args.predictions.is_dir() else args.predictions
        if not path.is_file():
            raise SystemExit(f"error: no prediction file {path} for {folder}")
        pairs += matched_confidences(path, folder)
    if not pairs:
        raise SystemExit("error: no predicted primitive with a confidence")
    print(table(pairs, BANDS), "", "Overlay colours:", "", table(pairs, OVERLAY_BANDS), sep="\n")
    print(f"\n{len(pairs)} primitives, expected calibration error {calibration_error(pairs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
