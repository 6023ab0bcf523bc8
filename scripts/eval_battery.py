"""Scores a model on the foreign battery and the project's own four test sets, in one table.

    nice -n 10 python3 scripts/eval_battery.py                      # dev halves, the package's model
    python3 scripts/eval_battery.py --half test --model runs/cpu --report battery.json
    python3 scripts/eval_battery.py --beam 4 --no-ocr               # other arguments go to 'cad2program eval'

Rows: every battery set found in testsets/battery/*/ (its --half folder: `dev` where decisions are
made, `test` only to report), sets named `real-*` scored geometry-only (drawings without
dimensions: rectangles and polylines counted as their sides, no size exactness); then the battery's
worst (the lowest value of each column over its sets) and mean (the mean over its sets); then the
own four test sets (testsets/clean, sketch, scan, photo) and all four together, as
scripts/eval_test_sets.sh scores them. Columns: drawings, F1, size exactness, drawings entirely right
(drawing accuracy) and F1 per primitive type. Scoring is `cad2program eval`'s own
(commands.evaluate.evaluate_folder, scoring.score); the model is loaded once.

Every other argument is one of `cad2program eval`'s (--model, --beam, --batch-size, --no-refine,
--no-ocr, --find-text, --one-look, --limit; see `cad2program eval --help`); --data, --out, --report
and --geometry-only are this script's to set.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OWN_SETS = ("clean", "sketch", "scan", "photo")
TYPES = ("line", "rectangle", "circle", "arc", "polyline")
REFUSED = ("--data", "--out", "--report", "--geometry-only")


def battery_folders(root: Path, half: str) -> list[tuple[str, Path, bool]]:
    """(set name, half folder, geometry only) for every set under root that has the half."""
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        if (folder / half / "labels.jsonl").is_file():
            found.append((folder.name, folder / half, folder.name.startswith("real-")))
        else:
            print(f"warning: {folder} has no {half}/labels.jsonl; left out", file=sys.stderr)
    return found


def _row(name: str, report: dict) -> dict:
    per_type = report.get("per_type", {})
    return {"set": name, "drawings": report["drawings"], "f1": report["f1"],
            "size_exactness": report["size_exactness"], "drawing_accuracy": report["drawing_accuracy"],
            "geometry_only": report.get("geometry_only", False),
            **{t: per_type[t]["f1"] if per_type.get(t, {}).get("true") else None for t in TYPES}}


def _summary(name: str, rows: list[dict], how) -> dict:
    out = {"set": name, "drawings": sum(r["drawings"] for r in rows), "geometry_only": False}
    for key in ("f1", "size_exactness", "drawing_accuracy") + TYPES:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = how(values) if values else None
    return out


def format_table(rows: list[dict]) -> str:
    def cell(value, percent=False):
        if value is None:
            return "-"
        return f"{100 * value:.1f}%" if percent else f"{value:.3f}"

    width = max(16, *(len(r["set"]) + 2 for r in rows if r is not None))
    head = (f"{'set':<{width}}{'drawings':>9}{'F1':>8}{'size exact':>12}{'all right':>11}"
            + "".join(f"{t:>11}" for t in TYPES))
    lines = [head, "-" * len(head)]
    for r in rows:
        if r is None:
            lines.append("")
            continue
        name = r["set"] + (" *" if r["geometry_only"] else "")
        lines.append(f"{name:<{width}}{r['drawings']:>9}{cell(r['f1']):>8}{cell(r['size_exactness'], True):>12}"
                     f"{cell(r['drawing_accuracy'], True):>11}" + "".join(f"{cell(r[t]):>11}" for t in TYPES))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=("dev", "test"), default="dev",
                        help="which half of each battery set (default dev; test only to report)")
    parser.add_argument("--report", type=Path, metavar="OUT.json", help="write every row and full report as JSON")
    parser.add_argument("--battery", type=Path, default=REPO / "testsets" / "battery", help=argparse.SUPPRESS)
    parser.add_argument("--no-own", action="store_true", help="leave out the own four test sets")
    parser.add_argument("--predictions", type=Path, metavar="DIR",
                        help="write each set's prediction file (DIR/SET.jsonl, 'cad2program predict' lines with "
                             "their confidences), to study or re-score without reading the drawings again")
    args, extra = parser.parse_known_args(argv)
    refused = [a for a in extra if a.split("=")[0] in REFUSED]
    if refused:
        parser.error(f"{refused[0]} is set by this script (use --report for the JSON)")

    from cad2program.commands import evaluate
    from cad2program.commands.reader_options import load_recognizer
    from cad2program.errors import UserError
    from cad2program.evaluation.scoring import score

    sets = battery_folders(args.battery, args.half)
    if not sets:
        parser.error(f"no battery set with a {args.half} half under {args.battery}")
    if args.report and not args.report.parent.is_dir():
        parser.error(f"--report {args.report}: the folder {args.report.parent} does not exist")
    if args.predictions:
        args.predictions.mkdir(parents=True, exist_ok=True)
    eval_parser = argparse.ArgumentParser(prog="eval_battery.py (arguments for cad2program eval)")
    evaluate.add_arguments(eval_parser)
    eval_args = eval_parser.parse_args(["--data", "unused", *extra])
    try:
        recognizer = load_recognizer(eval_args)
    except UserError as err:
        sys.exit(f"error: {err}")

    def run(name: str, folder: Path, geometry_only: bool):
        report, lines, items, time_text = evaluate.evaluate_folder(recognizer, folder, eval_args.batch_size,
                                                                   eval_args.limit, geometry_only)
        if args.predictions:
            (args.predictions / f"{name.replace('/', '-')}.jsonl").write_text(
                "".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
        print(f"{folder.relative_to(REPO) if folder.is_relative_to(REPO) else folder}: F1 {report['f1']:.3f}; "
              f"{time_text}", file=sys.stderr)
        return report, items

    reports, battery_rows = {}, []
    for name, folder, geometry_only in sets:
        report, _ = run(f"{name}/{args.half}", folder, geometry_only)
        reports[f"{name}/{args.half}"] = report
        battery_rows.append(_row(f"{name}/{args.half}", report))
    rows: list = battery_rows + [_summary("battery worst", battery_rows, min),
                                 _summary("battery mean", battery_rows, lambda v: sum(v) / len(v))]
    if not args.no_own:
        rows.append(None)
        own_items = []
        for name in OWN_SETS:
            report, items = run(name, REPO / "testsets" / name, False)
            reports[name] = report
            own_items += items
            rows.append(_row(name, report))
        combined = score(own_items)
        reports["own (all four)"] = combined
        rows.append(_row("own (all four)", combined))
    if args.report:  # written first: a long run's figures are never lost to the table
        payload = {"model": eval_args.model or "(the package's default model)", "half": args.half,
                   "eval_arguments": extra, "rows": [r for r in rows if r is not None], "reports": reports}
        args.report.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote the report to {args.report}", file=sys.stderr)
    print()
    print(f"model: {eval_args.model or '(the package default)'}; battery half: {args.half}; "
          f"* = geometry only (rectangles and polylines as their sides, no sizes)")
    print(format_table(rows))
    return 1 if any(r.get("unreadable_images") for r in reports.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
