"""The geometry every layer shares: the contract's matching tolerance, the error of a matching pair,
a primitive's outline as points, and the geometry-only view of a drawing (`../shared/spec`, section 5).

Scoring matches with it, refining measures against it (a primitive re-measured within the tolerance of
another is a repeat), and the outputs draw with it; it knows nothing of images, models or files.
"""

from __future__ import annotations

import math
from typing import Iterable

from cad2program.contract.program import Arc, Circle, Line, Polyline, Primitive, Rectangle, Sheet

Point = tuple[float, float]  # (x, y) in sheet millimetres

TOLERANCE_SHARE = 0.02  # t = 0.02 * max(W, H)
ANGLE_TOLERANCE = 5.0  # degrees
_FLOAT_SLACK = 1e-6  # float noise that must not turn a pair exactly at the tolerance into a miss


def tolerance(sheet: Sheet) -> float:
    """The position tolerance t of a sheet."""
    return TOLERANCE_SHARE * max(sheet.width, sheet.height)


def angle_difference(a: float, b: float) -> float:
    """Degrees between two angles measured around the circle, in [0, 180]."""
    diff = abs(a - b) % 360.0
    return min(diff, 360.0 - diff)


def _fields_error(pred: Primitive, true: Primitive, names: Iterable[str], t: float) -> float | None:
    total = 0.0
    for name in names:
        diff = abs(getattr(pred, name) - getattr(true, name))
        if diff > t + _FLOAT_SLACK:
            return None
        total += diff / t
    return total


def _line_error(pred: Line, true: Line, t: float) -> float | None:
    swapped = Line(pred.x2, pred.y2, pred.x1, pred.y1)
    errors = [e for e in (_fields_error(pred, true, ("x1", "y1", "x2", "y2"), t),
                          _fields_error(swapped, true, ("x1", "y1", "x2", "y2"), t)) if e is not None]
    return min(errors) if errors else None


def _arc_error(pred: Arc, true: Arc, t: float) -> float | None:
    total = _fields_error(pred, true, ("x", "y", "radius"), t)
    if total is None:
        return None
    for name in ("start_angle", "end_angle"):
        diff = angle_difference(getattr(pred, name), getattr(true, name))
        if diff > ANGLE_TOLERANCE + _FLOAT_SLACK:
            return None
        total += diff / ANGLE_TOLERANCE
    return total


def polyline_alignments(count: int, closed: bool) -> list[list[int]]:
    """Orders of the predicted points to compare with the true points 0..count-1, in turn."""
    forward = list(range(count))
    orders = [forward, forward[::-1]]
    if closed:
        orders = [forward[s:] + forward[:s] for s in range(count)]
        orders += [order[::-1] for order in orders]
    unique = []
    for order in orders:
        if order not in unique:
            unique.append(order)
    return unique


def _polyline_error(pred: Polyline, true: Polyline, t: float) -> float | None:
    if pred.closed != true.closed or len(pred.points) != len(true.points):
        return None
    best = None
    for order in polyline_alignments(len(true.points), true.closed):
        total = 0.0
        for j, i in enumerate(order):
            (px, py), (tx, ty) = pred.points[i], true.points[j]
            distance = math.hypot(px - tx, py - ty)
            if distance > t + _FLOAT_SLACK:
                break
            total += distance / t
        else:
            best = total if best is None else min(best, total)
    return best


def pair_error(pred: Primitive, true: Primitive, sheet: Sheet) -> float | None:
    """The error of a matching pair (see the module docstring), or None when the two do not match."""
    if pred.TYPE != true.TYPE:
        return None
    t = tolerance(sheet)
    if isinstance(true, Line):
        return _line_error(pred, true, t)
    if isinstance(true, Arc):
        return _arc_error(pred, true, t)
    if isinstance(true, Polyline):
        return _polyline_error(pred, true, t)
    return _fields_error(pred, true, type(true).number_fields(), t)


def arc_sweep(arc: Arc) -> float:
    """Counter-clockwise sweep from start to end in degrees, in (0, 360]."""
    sweep = (arc.end_angle - arc.start_angle) % 360.0
    return sweep if sweep > 0 else 360.0


def primitive_polyline(primitive: Primitive, max_chord_error: float = 0.02) -> tuple[list[Point], bool]:
    """The primitive as (points, closed) in mm; circles and arcs sampled within `max_chord_error` mm."""
    if isinstance(primitive, Line):
        return [(primitive.x1, primitive.y1), (primitive.x2, primitive.y2)], False
    if isinstance(primitive, Rectangle):
        x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)], True
    if isinstance(primitive, Polyline):
        return list(primitive.points), primitive.closed
    radius = abs(primitive.radius)
    if isinstance(primitive, Circle):
        start, sweep, closed = 0.0, 360.0, True
    else:
        start, sweep, closed = primitive.start_angle, arc_sweep(primitive), False
    # Chord error of a step d on radius r is r (1 - cos(d/2)); solve for d.
    step = 2 * math.acos(max(-1.0, 1 - max_chord_error / radius)) if radius > max_chord_error else math.pi / 4
    count = max(8, math.ceil(math.radians(sweep) / step))
    last = count if not closed else count - 1
    points = [(primitive.x + radius * math.cos(math.radians(start + sweep * i / count)),
               primitive.y + radius * math.sin(math.radians(start + sweep * i / count)))
              for i in range(last + 1)]
    return points, closed


def as_segments(primitives: Iterable[Primitive]) -> list[Primitive]:
    """The geometry-only view of a drawing: each rectangle and polyline becomes its sides (lines; a
    closed polyline also its closing side, a zero-length side none), circles, arcs and lines stay."""
    out: list[Primitive] = []
    for primitive in primitives:
        if isinstance(primitive, Rectangle):
            x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
            corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
        elif isinstance(primitive, Polyline):
            corners = primitive.path()
        else:
            out.append(primitive)
            continue
        out += [Line(a[0], a[1], b[0], b[1]) for a, b in zip(corners, corners[1:]) if a != b]
    return out
