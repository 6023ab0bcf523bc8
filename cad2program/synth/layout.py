"""Layouts in millimetres: primitives on the contract's value grid, their dimension annotations, and
the boxes that keep every primitive and annotation apart from the others.

A primitive and its annotations form a `Group`: strokes (outlines, dimension and extension lines,
leaders), filled arrowheads and text labels, all in sheet millimetres (y up), plus the boxes the group
occupies. Groups are built around the origin, then moved by a whole or half millimetre offset to a
free place on the sheet, so every coordinate stays on the 0.5 mm grid.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet, format_number
from cad2program.contract.program_text import reading_order
from cad2program.synth import fonts
from cad2program.synth.sketch import (Group, Pen, Sketchpad, Stroke, reading_angle, text_up, arc_points, centre_mark,
                                      curve_boxes, grid_value, leader, linear_dimension, points_box, polyline_boxes,
                                      segment_boxes, segment_hits_box, size_value, text_box)

# ----------------------------------------------------------------------------------------------
# Primitive groups, built around the origin
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Scale:
    """Size range for one drawing's primitives (mm)."""

    low: float
    high: float
    sheet_long: float


def rectangle_group(pen: Pen, scale: Scale) -> Group | None:
    rng = pen.rng
    width = size_value(rng, scale.low, scale.high)
    height = size_value(rng, scale.low, scale.high * (0.7 if rng.random() < 0.5 else 1.0))
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
    pad = Sketchpad(pen)
    below = rng.random() < 0.7
    y_edge, normal = (0.0, np.array([0.0, -1.0])) if below else (height, np.array([0.0, 1.0]))
    linear_dimension(pad, np.array([0.0, y_edge]), np.array([width, y_edge]), normal,
                     format_number(width), "width")
    left = rng.random() < 0.6
    x_edge, normal = (0.0, np.array([-1.0, 0.0])) if left else (width, np.array([1.0, 0.0]))
    linear_dimension(pad, np.array([x_edge, 0.0]), np.array([x_edge, height]), normal,
                     format_number(height), "height")
    geom = [Stroke(corners, closed=True)]
    return pad.group(Rectangle(0, 0, width, height), geom, polyline_boxes(corners, pen.margin_mm, True))


def _unit(angle_deg: float) -> np.ndarray:
    rad = math.radians(angle_deg)
    return np.array([math.cos(rad), math.sin(rad)])


def _diagonal_angle(rng: np.random.Generator) -> float:
    return float(rng.uniform(25, 65) + 90 * rng.integers(4))


def circle_group(pen: Pen, scale: Scale) -> Group | None:
    rng = pen.rng
    smallest = max(scale.low * 0.6, pen.text_mm * 1.2, 2.0)
    diameter = size_value(rng, smallest, max(scale.high, smallest), half_share=0.0)
    radius = diameter / 2
    text = "\u00d8" + format_number(diameter)
    pad = Sketchpad(pen)
    outline = arc_points(0, 0, radius, 0, 0, max(pen.px_per_mm))
    origin = np.zeros(2)
    mask, w, h = pen.text(text, 0.0)
    fits_inside = diameter >= w + 2 * pen.gap_mm + 2.6 * pen.arrow_mm and radius > 1.6 * h
    if not (fits_inside and rng.random() < 0.45 and diameter_line(pad, radius, text)):
        direction = _unit(_diagonal_angle(rng))
        leader(pad, direction * radius, direction, text, "radius", pen.text_mm * rng.uniform(1.0, 2.2))
        if rng.random() < 0.4 and radius > 1.5 * pen.text_mm:
            centre_mark(pad, origin, pen.text_mm * 0.5)
    geom = [Stroke(outline, closed=True, curved=True)]
    reach = radius + pen.margin_mm
    boxes = [(-reach, -reach, reach, reach)]
    return pad.group(Circle(0, 0, radius), geom, boxes)


def diameter_line(pad: Sketchpad, radius: float, text: str) -> bool:
    """A diameter line through the centre, arrows on the circle, text along it (when it fits inside)."""
    pen, rng = pad.pen, pad.pen.rng
    angle = 0.0 if rng.random() < 0.35 else float(rng.uniform(15, 75) * (1 if rng.random() < 0.5 else -1))
    direction = _unit(angle)
    text_angle = reading_angle(direction)
    upright = fonts.render_text(pen.face, pen.font_px, text, 0.0)
    w0, h0 = upright.shape[1] / pen.px_per_mm[0], upright.shape[0] / pen.px_per_mm[1]
    up = text_up(text_angle)
    along = _unit(text_angle)
    centre = along * rng.uniform(-0.25, 0.25) * max(radius - w0 / 2, 0.0) + up * (pen.gap_mm + h0 / 2)
    corners = [centre + along * sx * w0 / 2 + up * sy * h0 / 2 for sx in (-1, 1) for sy in (-1, 1)]
    if max(float(np.hypot(*c)) for c in corners) > radius - pen.gap_mm:
        return False
    a, b = -direction * radius, direction * radius
    pad.anno_line(a, b)
    pad.arrow(a, -direction)
    pad.arrow(b, direction)
    mask, w, h = pen.text(text, text_angle)
    pad.label(text, centre, mask, w, h)
    pad.annotations.append(("radius", text))
    return True


def arc_group(pen: Pen, scale: Scale) -> Group | None:
    rng = pen.rng
    radius = size_value(rng, max(scale.low * 0.6, pen.text_mm * 1.5, 2.0), max(scale.high * 0.6, 3.0))
    start = float(rng.integers(0, 24) * 15 if rng.random() < 0.4 else rng.integers(0, 360))
    span = float(rng.integers(30, 331))
    end = (start + span) % 360.0
    text = "R" + format_number(radius)
    pad = Sketchpad(pen)
    outline = arc_points(0, 0, radius, start, end, max(pen.px_per_mm))
    direction = _unit(start + span * rng.uniform(0.3, 0.7))
    tip = direction * radius
    origin = np.zeros(2)
    if rng.random() < 0.6:
        # Dimension line from the centre, arrow on the arc, text on its continuation outside.
        pad.anno_line(origin, tip)
        leader(pad, tip, direction, text, "radius", pen.text_mm * rng.uniform(0.8, 1.8), arrow_at_tip=False)
        pad.arrow(tip, direction)
    else:
        leader(pad, tip, direction, text, "radius", pen.text_mm * rng.uniform(1.0, 2.2))
        centre_mark(pad, origin, min(radius * 0.25, pen.text_mm * 0.5))
    geom = [Stroke(outline, curved=True)]
    boxes = curve_boxes(outline, pen.margin_mm) + [points_box(origin[None], pen.margin_mm)]
    return pad.group(Arc(0, 0, radius, start, end), geom, boxes)


def _label_segment(pad: Sketchpad, a: np.ndarray, b: np.ndarray, side: np.ndarray, avoid: np.ndarray,
                   avoid_closed: bool) -> bool:
    """Writes an axis-aligned segment's length beside it when the text clears the whole shape."""
    pen = pad.pen
    length = float(np.hypot(*(b - a)))
    direction = (b - a) / length
    vertical = abs(direction[1]) > 0.5
    angle = 90.0 if vertical and pen.vertical_text == "rotated" else 0.0
    text = format_number(length)
    mask, w, h = pen.text(text, angle)
    along, across = (h, w) if vertical else (w, h)
    if along > 0.6 * length:  # a label longer than its segment is ambiguous
        return False
    centre = (a + b) / 2 + side * (pen.gap_mm + across / 2)
    box = text_box(centre, w, h, pen.gap_mm * 0.5)
    pts = np.vstack([avoid, avoid[:1]]) if avoid_closed else avoid
    if any(segment_hits_box(p, q, box) for p, q in zip(pts[:-1], pts[1:])):
        return False
    pad.label(text, centre, mask, w, h)
    pad.annotations.append(("length", text))
    return True


def line_group(pen: Pen, scale: Scale) -> Group | None:
    rng = pen.rng
    length = size_value(rng, max(scale.low, 0.06 * scale.sheet_long), scale.high * 1.2)
    if rng.random() < 0.5:
        end = np.array([length, 0.0]) if rng.random() < 0.55 else np.array([0.0, length])
    else:
        end = _unit(float(rng.uniform(0, 180))) * length
        end = np.round(end * 2) / 2 if rng.random() < 0.15 else np.round(end)
        if not end.all():
            return None
    start = np.zeros(2)
    pad = Sketchpad(pen)
    axis_aligned = not end.all()
    if axis_aligned and rng.random() < 0.6:
        normal = np.array([-end[1], end[0]]) / float(np.hypot(*end))
        normal = normal if rng.random() < 0.5 else -normal
        if rng.random() < 0.35:
            # Dimension on the side the text reads up to: text between a lone line and its dimension
            # line would close a box that looks like a rectangle.
            if end[0] == 0 and pen.vertical_text == "rotated":
                normal = np.array([-1.0, 0.0])
            elif end[1] == 0:
                normal = np.array([0.0, 1.0])
            linear_dimension(pad, start, end, normal, format_number(float(np.hypot(*end))), "length")
        else:
            _label_segment(pad, start, end, normal, np.array([start, end]), False)
    geom = [Stroke(np.array([start, end]))]
    return pad.group(Line(0, 0, float(end[0]), float(end[1])), geom, segment_boxes(start, end, pen.margin_mm))


def _segments_cross(points: np.ndarray) -> bool:
    """Do two non-adjacent segments of an open chain cross (or touch)?"""
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    segs = list(zip(points[:-1], points[1:]))
    for i in range(len(segs)):
        for j in range(i + 2, len(segs)):
            (a, b), (c, d) = segs[i], segs[j]
            if (orient(a, b, c) * orient(a, b, d) <= 0) and (orient(c, d, a) * orient(c, d, b) <= 0):
                return True
    return False


def _polyline_points(rng: np.random.Generator, size: float) -> tuple[np.ndarray, bool] | None:
    shape = rng.choice(["steps", "zigzag", "triangle", "polygon", "ell"])
    min_step = max(2.0, size * 0.18)
    if shape == "steps":  # right-angled chain: L, Z, U and staircase outlines
        count = int(rng.integers(3, 6))
        point, points = np.zeros(2), [np.zeros(2)]
        axis = int(rng.integers(2))
        for _ in range(count - 1):
            step = np.zeros(2)
            step[axis] = size_value(rng, min_step, size) * (1 if rng.random() < 0.6 else -1)
            point = point + step
            points.append(point)
            axis = 1 - axis
        return np.array(points), False
    if shape == "ell":  # closed L-shaped outline
        w, h = size_value(rng, size * 0.5, size), size_value(rng, size * 0.5, size)
        cw, ch = size_value(rng, min_step, w * 0.6), size_value(rng, min_step, h * 0.6)
        if cw >= w or ch >= h:
            return None
        return np.array([[0, 0], [w, 0], [w, ch], [cw, ch], [cw, h], [0, h]], dtype=float), True
    if shape == "zigzag":
        count = int(rng.integers(2, 6))
        xs = np.cumsum([0.0] + [size_value(rng, min_step, size / 2) for _ in range(count - 1)])
        ys = [grid_value(rng, 0, size) or 0.0 for _ in range(count)]
        return np.stack([xs, ys], axis=1), False
    count = 3 if shape == "triangle" else int(rng.integers(4, 7))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    if np.diff(np.concatenate([angles, angles[:1] + 2 * np.pi])).max() > 0.75 * 2 * np.pi:
        return None
    radii = rng.uniform(0.5, 1.0, count) * size / 2
    points = np.round(np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1))
    return points, True


def _sharpest_turn(ring: np.ndarray, closed: bool) -> float:
    """Smallest angle (degrees) between consecutive segments at a shared vertex."""
    steps = np.diff(ring, axis=0)
    pairs = list(zip(steps[:-1], steps[1:])) + ([(steps[-1], steps[0])] if closed else [])
    smallest = 180.0
    for a, b in pairs:
        cos = float(-(a @ b) / (np.hypot(*a) * np.hypot(*b)))
        smallest = min(smallest, math.degrees(math.acos(max(-1.0, min(1.0, cos)))))
    return smallest


def polyline_group(pen: Pen, scale: Scale) -> Group | None:
    rng = pen.rng
    size = size_value(rng, max(scale.low, 0.08 * scale.sheet_long, 3 * pen.text_mm), max(scale.high, 3 * pen.text_mm))
    made = _polyline_points(rng, size)
    if made is None:
        return None
    points, closed = made
    ring = np.vstack([points, points[:1]]) if closed else points
    steps = np.hypot(*np.diff(ring, axis=0).T)
    if steps.min() < max(2.0, 0.02 * scale.sheet_long, 0.6 * pen.text_mm):
        return None
    if _segments_cross(points) or (closed and _segments_cross(np.vstack([points[1:], points[:1]]))):
        return None
    if _sharpest_turn(ring, closed) < 20.0:  # needle-thin spikes read as one thick line
        return None
    pad = Sketchpad(pen)
    if rng.random() < 0.5:  # a few segment lengths, on axis-aligned segments
        centroid = points.mean(axis=0)
        labelled = 0
        for i in rng.permutation(len(ring) - 1):
            a, b = ring[i], ring[i + 1]
            if a[0] != b[0] and a[1] != b[1]:
                continue
            normal = np.array([-(b - a)[1], (b - a)[0]]) / float(np.hypot(*(b - a)))
            if closed and float(normal @ ((a + b) / 2 - centroid)) < 0:
                normal = -normal  # outside the closed shape
            elif not closed and rng.random() < 0.5:
                normal = -normal
            labelled += _label_segment(pad, a, b, normal, points, closed)
            if labelled >= rng.integers(1, 4):
                break
    geom = [Stroke(points.astype(float), closed=closed)]
    primitive = Polyline(tuple((float(x), float(y)) for x, y in points), closed)
    return pad.group(primitive, geom, polyline_boxes(points, pen.margin_mm, closed))


BUILDERS: dict[str, Callable[[Pen, Scale], Group | None]] = {
    "line": line_group, "rectangle": rectangle_group, "circle": circle_group, "arc": arc_group,
    "polyline": polyline_group,
}


# ----------------------------------------------------------------------------------------------
# Placement
# ----------------------------------------------------------------------------------------------


def grid_values(rng: np.random.Generator, lows: tuple[float, float], highs: tuple[float, float], count: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Up to `count` values in [low, high] for each of two ranges (x and y offsets), whole mostly, some
    ending in .5 (those outside dropped). One draw for both ranges: half the calls into the generator."""
    low, high = np.array(lows)[:, None], np.array(highs)[:, None]
    draws = rng.random((2, 2, count))  # positions, then which of them end in .5
    raw = low + draws[0] * np.maximum(high - low, 0.0)
    values = np.where(draws[1] < 0.15, np.floor(raw) + 0.5, np.round(raw))
    inside = (values >= low) & (values <= high)
    return values[0][inside[0]], values[1][inside[1]]


CANDIDATES = 24  # positions tried for each built group


def _overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise overlap of boxes a (..., 4) and b (..., 4), broadcast."""
    # Four comparisons spelt out: an .all() over a last axis of length 2 is several times slower.
    return ((a[..., 0] < b[..., 2]) & (b[..., 0] < a[..., 2])
            & (a[..., 1] < b[..., 3]) & (b[..., 1] < a[..., 3]))


def _free_offset(rng: np.random.Generator, group: Group, sheet: Sheet, border: float,
                 taken: np.ndarray) -> tuple[float, float] | None:
    """A whole/half mm offset that puts the group on the sheet clear of everything taken."""
    bounds = group.bounds()
    x0, y0, x1, y1 = bounds
    dxs, dys = grid_values(rng, (border - x0, border - y0), (sheet.width - border - x1, sheet.height - border - y1),
                           CANDIDATES)
    n = min(len(dxs), len(dys))
    if n == 0:
        return None
    offsets = np.stack([dxs[:n], dys[:n], dxs[:n], dys[:n]], axis=1)
    if not len(taken):
        return float(offsets[0, 0]), float(offsets[0, 1])
    # Coarse test with the group's bounds first; the group's own boxes only where the bounds collide.
    coarse = _overlaps((bounds + offsets)[:, None, :], taken[None, :, :])  # (n, t)
    blocked = coarse.any(axis=1)
    if not blocked.all():
        first = int(blocked.argmin())  # the first candidate clear of everything
        return float(offsets[first, 0]), float(offsets[first, 1])
    near = taken[coarse.any(axis=0)]  # (m, 4)
    # Box by box, largest first, over the candidates not yet blocked: most fine tests end with every
    # candidate blocked (no room), and the outline's large boxes usually show that after one or two steps.
    boxes, blocked = group.boxes, np.zeros(n, bool)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for box in boxes[np.argsort(-areas, kind="stable")]:
        open_rows = np.flatnonzero(~blocked)
        moved = box + offsets[open_rows]  # (o, 4)
        blocked[open_rows] = _overlaps(moved[:, None, :], near[None, :, :]).any(axis=1)
        if blocked.all():
            return None
    first = int(blocked.argmin())
    return float(offsets[first, 0]), float(offsets[first, 1])


def border_mm(sheet: Sheet) -> float:
    """Clearance kept between ink and the sheet's edge (scan rotation, photo perspective)."""
    return 0.035 * sheet.longer_side


def place_together(rng: np.random.Generator, members: list[Group], sheet: Sheet) -> list[Group] | None:
    """Moves groups built in one frame (a part's primitives) by one free offset (None: no room)."""
    whole = Group(members[0].primitive, [], [], [], np.vstack([g.boxes for g in members]), [])
    offset = _free_offset(rng, whole, sheet, border_mm(sheet), np.zeros((0, 4)))
    if offset is None:
        return None
    return [g.translate(*offset) for g in members]


def layout(pen: Pen, sheet: Sheet, count: int, types: Sequence[str], minimum: int,
           placed: Sequence[Group] = ()) -> list[Group]:
    """Places up to `count` groups without collisions; keeps trying smaller ones to reach `minimum`.
    `placed` groups are on the sheet already (a part) and count towards both."""
    rng = pen.rng
    long_side, short_side = sheet.longer_side, min(sheet.width, sheet.height)
    border = border_mm(sheet)
    high = short_side * float(np.clip(1.3 / math.sqrt(count), 0.16, 0.75))
    low = min(max(0.07 * long_side, 1.2 * pen.text_mm), high)
    groups: list[Group] = list(placed)
    taken = np.vstack([np.zeros((0, 4))] + [g.boxes for g in groups])
    attempts, limit, hard_limit = 0, 3 * count + 10, 30 * count + 100
    shrink = 1.0  # each failed placement makes the next primitives smaller, so a full sheet still fills
    while len(groups) < count and attempts < (limit if len(groups) >= minimum else hard_limit):
        attempts += 1
        scale = Scale(low * max(shrink, 0.4), max(high * shrink, low * 0.6), long_side)
        group = BUILDERS[types[rng.integers(len(types))]](pen, scale)
        if group is None:
            continue
        offset = _free_offset(rng, group, sheet, border, taken)
        if offset is None:
            shrink = max(0.2, shrink * 0.85)
            continue
        moved = group.translate(*offset)
        groups.append(moved)
        taken = np.vstack([taken, moved.boxes])
    groups.sort(key=lambda g: reading_order(g.primitive))
    return groups
