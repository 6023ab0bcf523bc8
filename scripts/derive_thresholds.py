"""Re-derives the two ink rules of the recognizer on dev drawings: `MIN_INK_SHARE` and `ARROWHEAD_SIDES`.

    python3 scripts/derive_thresholds.py testsets/battery/*/dev [--model M] [--limit N]

Both rules drop predicted primitives after re-measuring them on the ink (`recognizer.measured_on`):
straight-edged ones whose strokes lie on too little ink, and closed polylines so small that they are
arrowheads. Their values must be chosen on drawings the project did not draw (the battery's dev
halves), never on a set that is reported. This script reads every drawing with both rules switched off,
records each re-measured primitive with its ink share and its longest side (in matching tolerances),
and whether it matches a true primitive (contract section 5). For each rule and type it prints, per
candidate value, how many matched and unmatched primitives the rule would drop, and the value that
maximises kept matches minus kept non-matches (pooled over the folders given, and per folder, so a
value that only one renderer likes shows up).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

import dataclasses

from cad2program.contract.dataset import load_dataset, load_image
from cad2program.contract.program import Line, Polyline, Rectangle
from cad2program.reading import DEFAULT_SETTINGS, Recognizer, stages_for
from cad2program.refine import longest_side
from cad2program.contract.geometry import tolerance
from cad2program.evaluation.scoring import matched_flags

INK_TYPES = (Line, Rectangle, Polyline)
INK_CANDIDATES = np.round(np.arange(0.0, 0.96, 0.05), 2)
SIDE_CANDIDATES = np.round(np.arange(0.0, 4.01, 0.25), 2)


def collect(folder: Path, reader, limit: int | None) -> list[dict]:
    """One row per re-measured primitive of every drawing: type, ink share, sides, matched."""
    rows: list[dict] = []
    records = load_dataset(folder, logger=lambda m: print(m, file=sys.stderr))[:limit]
    first_measuring = stages_for(reader, until="reread sizes")  # the model's own reading, measured
    for record in tqdm(records, desc=f"read {folder}", unit="drawing"):
        [drawing] = reader.read([load_image(record.image_path)], sheets=[record.sheet], stages=first_measuring)
        sheet, primitives, sizes = drawing.sheet, drawing.first.measured.primitives, drawing.first.sizes
        flags = matched_flags(primitives, record.primitives, sheet)
        t = tolerance(sheet)
        for p, size, matched in zip(primitives, sizes, flags):
            sides = longest_side(p) / t if isinstance(p, Polyline) and p.closed else None
            rows.append({"type": type(p), "ink": size.get("ink_share", 1.0), "sides": sides,
                         "matched": bool(matched), "folder": folder.parent.name if folder.name in ("dev", "test") else folder.name})
    return rows


def best(values: np.ndarray, matched: np.ndarray, candidates: np.ndarray) -> tuple[float, list[tuple]]:
    """The candidate that keeps the most matches net of non-matches (ties: the smallest), and the table."""
    table = []
    for c in candidates:
        dropped = values < c
        table.append((float(c), int((dropped & matched).sum()), int((dropped & ~matched).sum())))
    scores = [(unmatched - lost, -c) for c, lost, unmatched in table]
    return table[int(np.argmax([s for s, _ in scores]))][0], table


def report(rows: list[dict]) -> None:
    folders = sorted({r["folder"] for r in rows})
    print("\nMIN_INK_SHARE: dropped (matched / unmatched) at each value; best pooled and per folder")
    for cls in INK_TYPES:
        pick = [r for r in rows if r["type"] is cls]
        if not pick:
            continue
        values = np.array([r["ink"] for r in pick])
        matched = np.array([r["matched"] for r in pick])
        value, table = best(values, matched, INK_CANDIDATES)
        per_folder = {}
        for f in folders:
            sub = [r for r in pick if r["folder"] == f]
            if sub:
                per_folder[f] = best(np.array([r["ink"] for r in sub]), np.array([r["matched"] for r in sub]),
                                     INK_CANDIDATES)[0]
        print(f"  {cls.TYPE:<10} n={len(pick):<5} best {value:.2f}   per folder: "
              + ", ".join(f"{f} {v:.2f}" for f, v in per_folder.items()))
        print("    " + "  ".join(f"{c:.2f}:{a}/{b}" for c, a, b in table if c in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9)))
    closed = [r for r in rows if r["sides"] is not None]
    if closed:
        values = np.array([r["sides"] for r in closed])
        matched = np.array([r["matched"] for r in closed])
        value, table = best(values, matched, SIDE_CANDIDATES)
        print(f"\nARROWHEAD_SIDES (closed polylines, longest side / tolerance): n={len(closed)} best {value:.2f}")
        print("    " + "  ".join(f"{c:.2f}:{a}/{b}" for c, a, b in table))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="labelled dev folders (never a reported test set)")
    parser.add_argument("--model", help="model file (default: the shipped one)")
    parser.add_argument("--limit", type=int, help="first N drawings of each folder")
    args = parser.parse_args(argv)
    rules_off = dataclasses.replace(DEFAULT_SETTINGS, min_ink_share={}, arrowhead_sides=0.0)  # keep every primitive
    reader = Recognizer.load(args.model, settings=rules_off)
    rows: list[dict] = []
    for folder in args.folders:
        rows += collect(folder, reader, args.limit)
    report(rows)
    counts = defaultdict(int)
    for r in rows:
        counts[r["matched"]] += 1
    print(f"\n{len(rows)} re-measured primitives, {counts[True]} matched")
    return 0


if __name__ == "__main__":
    sys.exit(main())
