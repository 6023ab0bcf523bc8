"""Contract-shaped geometry in a DXF file's units, and the polyline rules of `import-dxf`.

`Shape` is one primitive still in file units (dxf_import reads them, dxf_drawings scales them onto a
sheet). `polyline_shapes` splits a polyline with bulges into arcs and straight runs, and finds
rectangles; `merge_line_rectangles` finds rectangles drawn as four LINE entities.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


class SkipEntity(Exception):
    """An entity left out of the import; the message is the reason shown in the per-file report."""


def check_coordinates(values, limit: float) -> None:
    for v in values:
        if not math.isfinite(v) or abs(v) > limit:
            raise SkipEntity("absurd coordinates (beyond 10 km, or not a number)")


@dataclasses.dataclass
class Shape:
    """One primitive in file units: kind is line, rectangle, circle, arc or polyline.

    values: line (x1, y1, x2, y2); rectangle (x, y, width, height); circle (x, y, radius);
    arc (x, y, radius, start_angle, end_angle) in degrees, counter-clockwise; polyline: `points`, `closed`.
    """

    kind: str
    values: tuple[float, ...] = ()
    points: np.ndarray | None = None
    closed: bool = False

    def bounds(self) -> tuple[float, float, float, float]:
        """x0, y0, x1, y1 of the ink, and of an arc's centre too (the contract's check wants it on the sheet)."""
        if self.kind in ("line",):
            x1, y1, x2, y2 = self.values
            return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)
        if self.kind == "rectangle":
            x, y, w, h = self.values
            return x, y, x + w, y + h
        if self.kind == "circle":
            x, y, r = self.values
            return x - r, y - r, x + r, y + r
        if self.kind == "arc":
            pts = np.vstack([arc_polyline(*self.values, count=64), [self.values[:2]]])
        else:
            pts = self.points
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())

    def scaled(self, scale: float, dx: float, dy: float) -> "Shape":
        """x -> x * scale + dx (and y likewise); sizes times scale, angles unchanged."""
        if self.kind == "polyline":
            return Shape("polyline", points=self.points * scale + np.array([dx, dy]), closed=self.closed)
        v = self.values
        if self.kind == "line":
            return Shape("line", (v[0] * scale + dx, v[1] * scale + dy, v[2] * scale + dx, v[3] * scale + dy))
        moved = (v[0] * scale + dx, v[1] * scale + dy)
        if self.kind == "rectangle":
            return Shape("rectangle", moved + (v[2] * scale, v[3] * scale))
        if self.kind == "circle":
            return Shape("circle", moved + (v[2] * scale,))
        return Shape("arc", moved + (v[2] * scale, v[3], v[4]))


def arc_polyline(cx: float, cy: float, radius: float, start: float, end: float, count: int = 48) -> np.ndarray:
    span = (end - start) % 360.0 or 360.0
    angles = np.radians(start + np.linspace(0.0, span, count + 1))
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)


# ----------------------------------------------------------------------------------------------
# Polylines, bulges and rectangles
# ----------------------------------------------------------------------------------------------


def polyline_shapes(points: list[tuple[float, float, float]], closed: bool, same: float, limit: float
                    ) -> list[Shape]:
    """A polyline (x, y, bulge per vertex) as contract shapes: each bulged segment an arc, each run of
    straight segments a polyline (a line when it is one segment); a closed axis-aligned quad a rectangle."""
    from ezdxf.math import bulge_to_arc

    check_coordinates([c for x, y, _ in points for c in (x, y)], limit)
    cleaned: list[tuple[float, float, float]] = []
    for x, y, bulge in points:  # repeated vertices carry no geometry
        if cleaned and math.hypot(x - cleaned[-1][0], y - cleaned[-1][1]) < same:
            cleaned[-1] = (cleaned[-1][0], cleaned[-1][1], bulge)
            continue
        cleaned.append((x, y, bulge))
    if len(cleaned) > 2 and math.hypot(cleaned[-1][0] - cleaned[0][0], cleaned[-1][1] - cleaned[0][1]) < same:
        closed = closed or abs(cleaned[-1][2]) < 1e-12  # the last point repeats the first: a closed outline
        if abs(cleaned[-1][2]) < 1e-12:
            cleaned.pop()
    if len(cleaned) < 2:
        raise SkipEntity("zero-length entity")
    count = len(cleaned)
    segments = [(cleaned[i], cleaned[(i + 1) % count]) for i in range(count if closed else count - 1)]
    bulged = [abs(a[2]) > 1e-9 for a, _ in segments]
    if not any(bulged):
        xy = np.array([(x, y) for x, y, _ in cleaned], float)
        if closed and len(xy) == 2:
            return [Shape("line", tuple(xy.ravel()))]
        rectangle = _as_rectangle(xy, same) if closed else None
        if rectangle is not None:
            return [rectangle]
        if len(xy) == 2:
            return [Shape("line", tuple(xy.ravel()))]
        return [Shape("polyline", points=xy, closed=closed)]
    # Start at a bulged segment so that a closed outline's straight runs are not cut at vertex 0.
    first = bulged.index(True) if closed else 0
    order = segments[first:] + segments[:first]
    shapes, run = [], []
    for (a, b) in order:
        if abs(a[2]) > 1e-9:
            if run:
                shapes.append(_run_shape(run))
                run = []
            centre, start, end, radius = bulge_to_arc(a[:2], b[:2], a[2])
            if radius >= same:
                shapes.append(Shape("arc", (centre[0], centre[1], radius, math.degrees(start) % 360,
                                            math.degrees(end) % 360)))
        else:
            run.append((a[:2], b[:2]))
    if run:
        shapes.append(_run_shape(run))
    return shapes


def _run_shape(run) -> Shape:
    points = np.array([run[0][0]] + [b for _, b in run], float)
    if len(points) == 2:
        return Shape("line", tuple(points.ravel()))
    return Shape("polyline", points=points, closed=False)


def _as_rectangle(xy: np.ndarray, same: float) -> Shape | None:
    """A closed four-sided outline with axis-aligned sides -> rectangle (None otherwise)."""
    if len(xy) != 4:
        return None
    for a, b in zip(xy, np.roll(xy, -1, axis=0)):
        if abs(a[0] - b[0]) > same and abs(a[1] - b[1]) > same:
            return None
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    if x1 - x0 < same or y1 - y0 < same:
        return None
    return Shape("rectangle", (float(x0), float(y0), float(x1 - x0), float(y1 - y0)))


def merge_line_rectangles(shapes: list[Shape], same: float = 1e-3) -> list[Shape]:
    """Four LINE entities that close an axis-aligned rectangle (end to end) -> one rectangle."""
    def key(v: float) -> int:
        return int(round(v / same))

    horizontal, vertical = {}, {}
    for i, s in enumerate(shapes):
        if s.kind != "line":
            continue
        x1, y1, x2, y2 = s.values
        if key(y1) == key(y2) and key(x1) != key(x2):
            horizontal.setdefault((key(min(x1, x2)), key(max(x1, x2))), []).append((key(y1), i, y1))
        elif key(x1) == key(x2) and key(y1) != key(y2):
            vertical.setdefault((key(min(y1, y2)), key(max(y1, y2)), key(x1)), []).append(i)
    used: set[int] = set()
    rectangles = []
    for (kx0, kx1), rows in horizontal.items():
        rows.sort()
        for a in range(len(rows)):
            for b in range(a + 1, len(rows)):
                (ky0, i, y0), (ky1, j, y1) = rows[a], rows[b]
                if i in used or j in used:
                    continue
                left = [k for k in vertical.get((ky0, ky1, kx0), []) if k not in used]
                right = [k for k in vertical.get((ky0, ky1, kx1), []) if k not in used]
                if left and right:
                    x0 = min(shapes[i].values[0], shapes[i].values[2])
                    x1 = max(shapes[i].values[0], shapes[i].values[2])
                    used.update((i, j, left[0], right[0]))
                    rectangles.append(Shape("rectangle", (x0, y0, x1 - x0, y1 - y0)))
    if not rectangles:
        return shapes
    return [s for i, s in enumerate(shapes) if i not in used] + rectangles


def merge_arcs(shapes: list[Shape], same: float = 1e-3, degrees: float = 0.01) -> list[Shape]:
    """Arcs of one circle (same centre and radius) that meet end to start -> one arc; arcs that together
    go all the way round -> a circle. CAD libraries often draw a circle as two half arcs; a reader
    writes one circle, and the label should say what the drawing shows."""
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, s in enumerate(shapes):
        if s.kind == "arc":
            x, y, r = s.values[:3]
            groups.setdefault((round(x / same), round(y / same), round(r / same)), []).append(i)
    replaced: dict[int, list[Shape]] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        x, y, r = shapes[members[0]].values[:3]
        # Counter-clockwise spans as [start, start + span) with start in [0, 360).
        spans = sorted((s.values[3] % 360.0, s.values[3] % 360.0 + ((s.values[4] - s.values[3]) % 360.0 or 360.0))
                       for s in (shapes[i] for i in members))
        merged = [list(spans[0])]
        for start, end in spans[1:]:
            if start <= merged[-1][1] + degrees:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if len(merged) > 1 and merged[-1][1] >= merged[0][0] + 360.0 - degrees:  # the last wraps onto the first
            merged[0] = [merged[-1][0], max(merged[-1][1], merged[0][1] + 360.0)]
            merged.pop()
        if len(merged) == len(members):
            continue  # nothing meets: leave them as they are
        if any(end - start >= 360.0 - degrees for start, end in merged):
            out = [Shape("circle", (x, y, r))]
        else:
            out = [Shape("arc", (x, y, r, start % 360.0, end % 360.0)) for start, end in merged]
        replaced[members[0]] = out
        replaced.update({i: [] for i in members[1:]})
    if not replaced:
        return shapes
    return [t for i, s in enumerate(shapes) for t in replaced.get(i, [s])]
