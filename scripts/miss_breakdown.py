"""Where a model's misses come from, on labelled folders and a prediction folder from `eval --out`.

    cad2program eval --data testsets/clean testsets/sketch testsets/scan testsets/photo --out preds/
    python3 scripts/miss_breakdown.py preds/ testsets/clean testsets/sketch testsets/scan testsets/photo

Prints: size exactness per type and field (of matched primitives); how many unmatched true lines had
no predicted line with both ends within 3 tolerances (never written, rather than misplaced); how
many true polylines no reader can tell from the image (two points: a segment drawn as a line is; or
a corner turning by less than 10 degrees); and the unmatched predictions per type, with where the
unmatched lines lie (ends and middle within a tolerance): along an unmatched true polyline of two
points (which is drawn as a line is) or of more (its sides written as lines), along some other true
primitive (a part of it, or a repeat), or on none (misplaced by more than the tolerance, or strokes
of text and bits of dimension lines).
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np

from cad2program.program import Arc, Circle, Line, Polyline, Primitive, Rectangle
from cad2program.scoring import SIZE_FIELDS, match_primitives, pair_predictions, tolerance

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


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    along = b - a
    t = float(np.clip((point - a) @ along / max(float(along @ along), 1e-9), 0.0, 1.0))
    return float(np.linalg.norm(point - a - t * along))


def distance_to(primitive: Primitive, point: np.ndarray) -> float:
    """Millimetres from a point to a primitive's strokes (an arc's: to its whole circle)."""
    if isinstance(primitive, (Circle, Arc)):
        return abs(float(np.hypot(*(point - (primitive.x, primitive.y)))) - primitive.radius)
    if isinstance(primitive, Line):
        corners, closed = [(primitive.x1, primitive.y1), (primitive.x2, primitive.y2)], False
    elif isinstance(primitive, Rectangle):
        x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
        corners, closed = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)], True
    else:
        corners, closed = list(primitive.points), primitive.closed
    corners = np.array(corners + corners[:1] if closed else corners, float)
    return min(_segment_distance(point, a, b) for a, b in zip(corners[:-1], corners[1:]))


def line_lies_on(line: Line, primitive: Primitive, tolerance_mm: float) -> bool:
    """Whether a line's ends and middle are all within the tolerance of the primitive's strokes."""
    ends = np.array([(line.x1, line.y1), (line.x2, line.y2)], float)
    return all(distance_to(primitive, p) <= tolerance_mm for p in (*ends, ends.mean(axis=0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("predictions", type=Path, help="folder of NAME.jsonl prediction files (eval --out)")
    parser.add_argument("truth", type=Path, nargs="+", help="the labelled folders the predictions are for")
    args = parser.parse_args(argv)
    exact, sizes = Counter(), Counter()
    lines_unmatched = lines_never_written = 0
    polylines = two_points = invisible_corner = 0
    extra, extra_lines = Counter(), Counter()
    for folder in args.truth:
        items, problems = pair_predictions(args.predictions / f"{folder.name}.jsonl", folder)
        for problem in problems:
            print(f"warning: {folder.name}: {problem}")
        for _, (pred, true, sheet, _) in items:
            pred = pred or []
            pairs = match_primitives(pred, true, sheet)
            matched = {j for _, j in pairs}
            wrote = {i for i, _ in pairs}
            for i, p in enumerate(pred):
                if i in wrote:
                    continue
                extra[p.TYPE] += 1
                if isinstance(p, Line):
                    under = [true[j] for j, q in enumerate(true) if line_lies_on(p, q, tolerance(sheet)) and j not in matched]
                    polylines_under = [len(q.points) for q in under if isinstance(q, Polyline)]
                    extra_lines["along an unmatched two-point polyline" if 2 in polylines_under else
                                "along another unmatched polyline" if polylines_under else
                                "along another true primitive" if any(
                                    line_lies_on(p, q, tolerance(sheet)) for q in true) else "on none"] += 1
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
                    elif smallest_turn(q) < INVISIBLE_TURN_DEGREES:
                        invisible_corner += 1
    print("| type | size field | exact | of | share |\n| --- | --- | --- | --- | --- |")
    for key in sorted(sizes):
        print(f"| {key[0]} | {key[1]} | {exact[key]} | {sizes[key]} | {exact[key] / sizes[key]:.2f} |")
    print(f"\nunmatched true lines: {lines_unmatched}; with no predicted line within {NEAR_TOLERANCES} "
          f"tolerances (never written): {lines_never_written}")
    print(f"true polylines: {polylines}; two points (drawn as a line is): {two_points}; a corner turning "
          f"< {INVISIBLE_TURN_DEGREES:g} degrees: {invisible_corner}")
    print("unmatched predictions: " + ", ".join(f"{extra[t]} {t}" for t in sorted(extra)) if extra else
          "unmatched predictions: none")
    print("unmatched predicted lines: " + "; ".join(f"{where}: {extra_lines[where]}" for where in (
        "along an unmatched two-point polyline", "along another unmatched polyline", "along another true primitive",
        "on none")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
