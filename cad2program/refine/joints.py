"""Where measured primitives meet: a line that runs on into an arc along its tangent ends where the
arc begins.

A line's ends are measured where its ink leaves a thin band around it (`segments.refine_line`). Where
an arc continues the line along its tangent (a slot's side, a fillet's edge) the arc's ink stays in
that band for a while past the tangent point (about sqrt(2 r band)), so the line reaches on into the
arc. The arc's own end is the tangent point (`arcs.refine_arc`, step 7): each line end near an arc
end that lies on the line and leaves along it is moved to that point, projected onto the line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from cad2program.contract.program import Arc, Line, Primitive

JOINT_ANGLE = 12.0  # degrees between a line and an arc's tangent at its end for the two to continue each other
JOINT_OFFSET = 0.5  # tolerances an arc's end may lie off the line (its stroke's middle) and still join it
JOINT_REACH = 0.6  # arc radii (at least one tolerance) between a line's end and the arc end it is moved to


def _arc_ends(arc: Arc) -> list[tuple[float, float, float, float]]:
    """(x, y, tangent x, tangent y) at an arc's start and end: its end points and the direction along it."""
    ends = arc.arc_points()[:2]  # the start's and the end's points come first
    return [(x, y, -math.sin(math.radians(a)), math.cos(math.radians(a)))
            for (x, y), a in zip(ends, (arc.start_angle, arc.end_angle))]


def _joined_end(line: Line, which: int, arcs: Sequence[Arc], tolerance_mm: float) -> tuple[float, float] | None:
    """The point (mm) end `which` (0: x1, y1; 1: x2, y2) of `line` moves to, or None when no arc joins it."""
    x1, y1, x2, y2 = line.x1, line.y1, line.x2, line.y2
    length = math.hypot(x2 - x1, y2 - y1)
    if length <= tolerance_mm:
        return None
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    px, py = (x1, y1) if which == 0 else (x2, y2)
    best = None
    for arc in arcs:
        reach = max(tolerance_mm, JOINT_REACH * arc.radius)
        for ex, ey, tx, ty in _arc_ends(arc):
            across = abs((ex - x1) * uy - (ey - y1) * ux)  # the arc end's distance from the line
            gap = math.hypot(ex - px, ey - py)
            turn = math.degrees(math.acos(min(1.0, abs(tx * ux + ty * uy))))
            if across > JOINT_OFFSET * tolerance_mm or gap > reach or turn > JOINT_ANGLE:
                continue
            along = (ex - x1) * ux + (ey - y1) * uy  # the arc end projected onto the line
            if (which == 0 and along >= length - tolerance_mm) or (which == 1 and along <= tolerance_mm):
                continue  # the line would turn round
            if best is None or gap < best[0]:
                best = (gap, (x1 + along * ux, y1 + along * uy))
    if best is None:
        return None
    return best[1]


def with_lines_ended_at_arcs(primitives: Sequence[Primitive], tolerance_mm: float) -> list[Primitive]:
    """The primitives, each line whose end runs on into an arc along its tangent ended where the arc begins."""
    arcs = [p for p in primitives if isinstance(p, Arc)]
    if not arcs:
        return list(primitives)
    out = []
    for p in primitives:
        if isinstance(p, Line):
            for which in (0, 1):
                moved = _joined_end(p, which, arcs, tolerance_mm)
                if moved is not None:
                    x, y = round(moved[0], 1), round(moved[1], 1)
                    p = dataclasses.replace(p, **({"x1": x, "y1": y} if which == 0 else {"x2": x, "y2": y}))
        out.append(p)
    return out
