"""Prints a training run's learning curve as a Markdown table, from its workdir's logs.

    python scripts/learning_curve.py runs/cpu-v4 --offset-drawings 45760

One row per evaluation (`eval_log.jsonl`): drawings seen, the training loss, key-point loss and
token accuracy averaged over the logged steps since the previous evaluation (`train_log.jsonl`),
then the held-out scores. `--offset-drawings` adds the drawings of the model a run started from
(`--init-from`), so that curves of continued runs line up. Then the median training speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

TYPES = ("line", "rectangle", "circle", "arc", "polyline")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        raise SystemExit(f"error: {path} does not exist (is this a training workdir?)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:  # e.g. a line cut short when a run was killed mid-write
            print(f"warning: {path}:{number}: not JSON ({err.msg}); line skipped", file=sys.stderr)
    return rows


def mean(rows: list[dict], key: str) -> str:
    values = [row[key] for row in rows if key in row]
    return f"{sum(values) / len(values):.2f}" if values else "–"


def curve_table(workdir: Path, offset_drawings: int = 0) -> str:
    train, evals = read_jsonl(workdir / "train_log.jsonl"), read_jsonl(workdir / "eval_log.jsonl")
    lines = ["| step | drawings seen | train loss | key-point loss | token accuracy | F1 | "
             + " | ".join(f"F1 {t}" for t in TYPES) + " | size exactness | valid rate |",
             "| --- " * (8 + len(TYPES)) + "|"]
    previous = 0
    for row in evals:
        since = [r for r in train if previous < r["step"] <= row["step"]]
        previous = row["step"]
        per_type = " | ".join(f"{row.get(f'f1_{t}', 0):.3f}" for t in TYPES)
        lines.append(f"| {row['step']} | {row['examples_seen'] + offset_drawings:,} | {mean(since, 'loss')} | "
                     f"{mean(since, 'keypoint_loss')} | {mean(since, 'token_accuracy')} | {row['f1']:.3f} | "
                     f"{per_type} | {row['size_exactness']:.2f} | {row['valid_rate']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="the run's --workdir")
    parser.add_argument("--offset-drawings", type=int, default=0,
                        help="drawings the starting model had seen (for runs started with --init-from)")
    args = parser.parse_args(argv)
    print(curve_table(args.workdir, args.offset_drawings))
    speeds = [r["samples_per_s"] for r in read_jsonl(args.workdir / "train_log.jsonl") if "samples_per_s" in r]
    if speeds:
        print(f"\ntraining speed: median {statistics.median(speeds):.1f} drawings/s over {len(speeds)} logged steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
