"""Where a model's misses come from, on labelled folders and a prediction folder from `eval --out`.

    cad2program eval --data testsets/clean testsets/sketch testsets/scan testsets/photo --out preds/
    python3 scripts/miss_breakdown.py preds/ testsets/clean testsets/sketch testsets/scan testsets/photo
    cad2program eval --data testsets/clean --out clean.jsonl
    python3 scripts/miss_breakdown.py clean.jsonl testsets/clean

Prints: size exactness per type and field (of matched primitives); how many unmatched true lines had
no predicted line with both ends within 3 tolerances (never written, rather than misplaced); how
many true polylines no reader can tell from the image (two points: a segment drawn as a line is; or
a corner turning by less than 10 degrees), and how many of them are left unmatched; the unmatched true primitives and the unmatched
predictions per type; and where the unmatched predicted lines lie (ends and middle within a
tolerance): along an unmatched true polyline of two points (which is drawn as a line is) or of more
(its sides written as lines), along some other true primitive (a part of it, or a repeat), or on
none (misplaced by more than the tolerance, or strokes of text and bits of dimension lines).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from cad2program.errors import UserError
from cad2program.contract.geometry import primitive_polyline, tolerance
from cad2program.contract.program import Line, Polyline, Primitive
from cad2program.evaluation.scoring import SIZE_FIELDS, match_primitives, pair_predictions

NEAR_TOLERANCES = 3
INVISIBLE_TURN_DEGREES = 10.0


def _line_distance(a: Line, b: Line) -> float:
    """The larger end-point distance, with the ends paired the closer way."""
    straight = max(math.hypot(a.x1 - b.x1, a.y1 - b.y1), math.hypot(a.x2 - b.x2, a.y2 - b.y2))
    swapped = max(math.hypot(a.x1 - b.x2, a.y1 - b.y2), math.hypot(a.x2 - b.x1, a.y2 - b.y1))
    return min(straight, swapped)


def smallest_turn(polyline: Polyline) -> float:
    """Degrees by which the polyline turns at its straightest corner (180 when it has none)."""
    points = np.array(polyline.points, float)
    ring = np.vstack([points, points[:2]]) if polyline.closed else points
    steps = np.diff(ring, axis=0)
    turns = [abs(math.degrees(math.atan2(a[0] * b[1] - a[1] * b[0], a @ b))) for a, b in zip(steps[:-1], steps[1:])]
    return min(turns, default=180.0)


def distances_to(primitive: Primitive, points: np.ndarray, max_chord_error: float) -> np.ndarray:
    """Millimetres from each point (N, 2) to a primitive's strokes (as `outputs.scene.primitive_polyline`
    traces them, once for all the points)."""
    corners, closed = primitive_polyline(primitive, max_chord_error)
    corners = np.array(corners + corners[:1] if closed else corners, float)
    start, along = corners[:-1], np.diff(corners, axis=0)  # (S, 2) each
    offset = points[:, None, :] - start[None]  # (N, S, 2)
    t = np.clip((offset * along).sum(axis=2) / np.maximum((along * along).sum(axis=1), 1e-9), 0.0, 1.0)
    return np.hypot(*np.moveaxis(offset - t[..., None] * along, 2, 0)).min(axis=1)


def line_lies_on(line: Line, primitive: Primitive, tolerance_mm: float) -> bool:
    """Whether a line's ends and middle are all within the tolerance of the primitive's strokes."""
    ends = np.array([(line.x1, line.y1), (line.x2, line.y2)], float)
    points = np.vstack([ends, ends.mean(axis=0)])
    return bool((distances_to(primitive, points, tolerance_mm / 10) <= tolerance_mm).all())


ALONG_TWO_POINT, ALONG_POLYLINE, ALONG_OTHER, ON_NONE = LINE_PLACES = (
    "along an unmatched two-point polyline", "along another unmatched polyline",
    "along another true primitive", "on none")


def where_it_lies(line: Line, true: list[Primitive], matched: set[int], tolerance_mm: float) -> str:
    """Which true primitive an unmatched predicted line lies along (`line_lies_on`): one of LINE_PLACES."""
    under = [j for j, q in enumerate(true) if line_lies_on(line, q, tolerance_mm)]
    unmatched_polylines = [len(true[j].points) for j in under if j not in matched and isinstance(true[j], Polyline)]
    if 2 in unmatched_polylines:
        return ALONG_TWO_POINT
    if unmatched_polylines:
        return ALONG_POLYLINE
    return ALONG_OTHER if under else ON_NONE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path, help="folder of NAME.jsonl prediction files (eval --out), or "
                                                       "one .jsonl file for a single labelled folder")
    parser.add_argument("truth", type=Path, nargs="+", help="the labelled folders the predictions are for")
    args = parser.parse_args(argv)
    single_file = args.predictions.is_file()  # what eval --out writes for one folder
    if single_file and len(args.truth) > 1:
        print(f"error: {args.predictions} is one prediction file; give one labelled folder with it, "
              f"or a folder of NAME.jsonl files for several", file=sys.stderr)
        return 2
    exact, sizes = Counter(), Counter()
    lines_unmatched = lines_never_written = 0
    polylines = two_points = invisible_corner = 0
    unmatched_two_points = unmatched_invisible = 0
    missed, extra, extra_lines = Counter(), Counter(), Counter()
    for folder in args.truth:
        try:
            items, problems = pair_predictions(
                args.predictions if single_file else args.predictions / f"{folder.name}.jsonl", folder)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for problem in problems:
            print(f"warning: {folder.name}: {problem}")
        for _, (pred, true, sheet, _) in items:
            pred = pred or []
            pairs = match_primitives(pred, true, sheet)
            matched = {j for _, j in pairs}
            wrote = {i for i, _ in pairs}
            missed.update(q.TYPE for j, q in enumerate(true) if j not in matched)
            for i, p in enumerate(pred):
                if i not in wrote:
                    extra[p.TYPE] += 1
                    if isinstance(p, Line):
                        extra_lines[where_it_lies(p, true, matched, tolerance(sheet))] += 1
            for i, j in pairs:
                for field in SIZE_FIELDS:
                    if field in type(true[j]).SIZE_FIELDS:
                        sizes[(true[j].TYPE, field)] += 1
                        exact[(true[j].TYPE, field)] += abs(getattr(pred[i], field) - getattr(true[j], field)) < 1e-6
            near = NEAR_TOLERANCES * tolerance(sheet)
            for j, q in enumerate(true):
                if isinstance(q, Line) and j not in matched:
                    lines_unmatched += 1
                    lines_never_written += not any(isinstance(p, Line) and _line_distance(p, q) < near for p in pred)
                if isinstance(q, Polyline):
                    polylines += 1
                    if len(q.points) == 2:
                        two_points += 1
                        unmatched_two_points += j not in matched
                    elif smallest_turn(q) < INVISIBLE_TURN_DEGREES:
                        invisible_corner += 1
                        unmatched_invisible += j not in matched
    print("| type | size field | exact | of | share |\n| --- | --- | --- | --- | --- |")
    for key in sorted(sizes):
        print(f"| {key[0]} | {key[1]} | {exact[key]} | {sizes[key]} | {exact[key] / sizes[key]:.2f} |")
    print(f"\nunmatched true lines: {lines_unmatched}; with no predicted line within {NEAR_TOLERANCES} "
          f"tolerances (never written): {lines_never_written}")
    print(f"true polylines: {polylines}; two points (drawn as a line is): {two_points} ({unmatched_two_points} "
          f"unmatched); a corner turning < {INVISIBLE_TURN_DEGREES:g} degrees: {invisible_corner} "
          f"({unmatched_invisible} unmatched)")
    print("unmatched true primitives: " + (", ".join(f"{missed[t]} {t}" for t in sorted(missed)) or "none"))
    print("unmatched predictions: " + (", ".join(f"{extra[t]} {t}" for t in sorted(extra)) or "none"))
    print("unmatched predicted lines: " + "; ".join(f"{where}: {extra_lines[where]}" for where in LINE_PLACES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
