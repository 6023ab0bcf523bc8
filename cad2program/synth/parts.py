"""Part-like compositions: plates, flanges, brackets and links whose primitives touch, nest and share ends.

Real drawings are rarely scattered primitives (contract 1.1, section 2a): an outline carries holes,
slots, fillets and bolt patterns, an arc meets a line at its end, and thin ink that is not geometry
(dash-dot centre lines, centre marks, hatching) runs through and around them. `part_groups` builds
one such part around the origin as a list of `Group`s, one per primitive, that the layout places
with one shared offset. Every coordinate is on the 0.5 mm grid before the offset, so it stays there.

Dimensions follow a drafter's habits: the outline's overall sizes outside it, one leader for each
hole size (repeated holes stay undimensioned, as under a `4x` note), one radius for the fillets.
A dimension whose text would land on another one is left out: the part then has undimensioned
primitives, which the contract allows and a reader must measure from the ink.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet, format_number
from cad2program.synth.layout import layout, place_together
from cad2program.synth.sketch import (Box, Group, Pen, Sketchpad, Stroke, arc_points, boxes_overlap, centre_mark,
                                      curve_boxes, leader, linear_dimension, polyline_boxes, segment_boxes, size_value)

# Dash-dot centre lines, in units of the digit height: long dash, gap, dot, gap.
CENTRE_DASH, CENTRE_GAP, CENTRE_DOT = 2.4, 0.5, 0.25
CENTRE_LINE_SHARE = 0.5  # parts drawn with centre lines through their holes and axes
HATCH_SHARE = 0.25  # nested outlines whose frame between them is hatched


def _half(value: float) -> float:
    """Rounded to the 0.5 mm grid."""
    return round(value * 2.0) / 2.0


class _Part:
    """The members of one part while it is built: (primitive, geometry strokes, boxes, pad)."""

    def __init__(self, pen: Pen):
        self.pen = pen
        self.members: list[tuple[object, list[Stroke], list[Box], Sketchpad]] = []
        self.text_boxes: list[Box] = []  # labels placed so far, kept clear of each other
        self.extra_ink = Sketchpad(pen)  # centre lines and hatching: drawn, not primitives
        self.outline_box: Box | None = None  # the outer contour's bounds, once drawn

    def leader_run(self, tip: np.ndarray, direction: np.ndarray) -> float:
        """How far a leader from `tip` must run to put its text outside the outline."""
        beyond = self.pen.text_mm * float(self.pen.rng.uniform(0.8, 1.6))
        if self.outline_box is None:
            return beyond
        exits = []
        for axis in (0, 1):
            if direction[axis] > 1e-9:
                exits.append((self.outline_box[axis + 2] - tip[axis]) / direction[axis])
            elif direction[axis] < -1e-9:
                exits.append((self.outline_box[axis] - tip[axis]) / direction[axis])
        return max(0.0, min(exits, default=0.0)) + beyond

    def add(self, primitive, strokes: list[Stroke], boxes: list[Box]) -> Sketchpad:
        pad = Sketchpad(self.pen)
        self.members.append((primitive, strokes, boxes, pad))
        return pad

    def try_dimension(self, pad: Sketchpad, draw: Callable[[Sketchpad], None], keep_field: bool = True) -> bool:
        """Draws a dimension on a scratch pad and keeps it only when its text clears the others'."""
        scratch = Sketchpad(self.pen)
        draw(scratch)
        text_boxes = [(float(label.centre[0]) - label.mask.shape[1] / self.pen.px_per_mm[0] / 2,
                       float(label.centre[1]) - label.mask.shape[0] / self.pen.px_per_mm[1] / 2,
                       float(label.centre[0]) + label.mask.shape[1] / self.pen.px_per_mm[0] / 2,
                       float(label.centre[1]) + label.mask.shape[0] / self.pen.px_per_mm[1] / 2)
                      for label in scratch.labels]
        m = self.pen.margin_mm * 0.9  # the members' boxes carry the clearance margin: the ink itself is inside
        geometry = [(x0 + m, y0 + m, x1 - m, y1 - m) for _, _, boxes, _ in self.members for x0, y0, x1, y1 in boxes]
        if boxes_overlap(text_boxes, self.text_boxes) or boxes_overlap(text_boxes, geometry):
            return False
        self.text_boxes.extend(text_boxes)
        pad.strokes += scratch.strokes
        pad.fills += scratch.fills
        pad.labels += scratch.labels
        pad.boxes += scratch.boxes
        if keep_field:
            pad.annotations += scratch.annotations
        return True

    def groups(self) -> list[Group]:
        groups = []
        for k, (primitive, strokes, boxes, pad) in enumerate(self.members):
            if k == 0:  # the non-geometry ink travels with the first member
                pad.strokes += self.extra_ink.strokes
                pad.boxes += self.extra_ink.boxes
            groups.append(pad.group(primitive, strokes, boxes))
        return groups


# ----------------------------------------------------------------------------------------------
# Ink that is not geometry
# ----------------------------------------------------------------------------------------------


def _dash_dot(pad: Sketchpad, points: np.ndarray) -> None:
    """A dash-dot centre line along the polyline `points` (mm), as separate short anno strokes."""
    unit = pad.pen.text_mm
    pattern = [(CENTRE_DASH * unit, True), (CENTRE_GAP * unit, False), (CENTRE_DOT * unit, True),
               (CENTRE_GAP * unit, False)]
    steps = np.hypot(*np.diff(points, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    total, position, k = float(along[-1]), 0.0, 0
    while position < total:
        length, inked = pattern[k % len(pattern)]
        if inked:
            ts = np.linspace(position, min(position + length, total), 6 if length > unit else 2)
            pieces = np.stack([np.interp(ts, along, points[:, 0]), np.interp(ts, along, points[:, 1])], axis=1)
            pad.anno_line(*pieces)
        position += length
        k += 1


def _centre_cross(part: _Part, centre: np.ndarray, reach: float) -> None:
    """Centre lines through a hole (dash-dot, past its edge) or a small centre mark."""
    pad, pen = part.extra_ink, part.pen
    if pen.rng.random() < 0.5:
        for direction in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
            _dash_dot(pad, np.array([centre - direction * reach, centre + direction * reach]))
    else:
        centre_mark(pad, centre, min(reach * 0.4, pen.text_mm * 0.6))


def _hatch(pad: Sketchpad, outer: Box, inner: Box | None, spacing: float, angle: float) -> None:
    """Parallel section lines across `outer`, skipping the inside of `inner`."""
    x0, y0, x1, y1 = outer
    direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    normal = np.array([-direction[1], direction[0]])
    corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    offsets = corners @ normal
    for offset in np.arange(offsets.min() + spacing / 2, offsets.max(), spacing):
        base = normal * offset
        span = _clip(base, direction, outer)
        if span is None:
            continue
        pieces = [span]
        if inner is not None:
            hole = _clip(base, direction, inner)
            if hole is not None:
                pieces = [(span[0], hole[0]), (hole[1], span[1])]
        for t0, t1 in pieces:
            if t1 - t0 > 1e-6:
                pad.strokes.append(Stroke(np.array([base + direction * t0, base + direction * t1]), "anno"))


def _clip(base: np.ndarray, direction: np.ndarray, box: Box) -> tuple[float, float] | None:
    """The parameter range of the line base + t * direction inside `box` (None when it misses)."""
    low, high = -1e9, 1e9
    for axis in (0, 1):
        if abs(direction[axis]) < 1e-12:
            if not box[axis] <= base[axis] <= box[axis + 2]:
                return None
            continue
        ta = (box[axis] - base[axis]) / direction[axis]
        tb = (box[axis + 2] - base[axis]) / direction[axis]
        low, high = max(low, min(ta, tb)), min(high, max(ta, tb))
    return (low, high) if low < high else None


# ----------------------------------------------------------------------------------------------
# Members
# ----------------------------------------------------------------------------------------------


def _circle(part: _Part, centre: np.ndarray, radius: float, dimension: bool, away: np.ndarray) -> None:
    """A hole; `away` is the direction its leader should head (out of the part)."""
    pen, rng = part.pen, part.pen.rng
    outline = arc_points(float(centre[0]), float(centre[1]), radius, 0, 0, max(pen.px_per_mm))
    reach = radius + pen.margin_mm
    pad = part.add(Circle(float(centre[0]), float(centre[1]), radius),
                   [Stroke(outline, closed=True, curved=True)],
                   [(centre[0] - reach, centre[1] - reach, centre[0] + reach, centre[1] + reach)])
    if dimension:
        text = "\u00d8" + format_number(2 * radius)
        for turn in rng.permutation([-20.0, 20.0, -50.0, 50.0])[:3]:
            angle = math.degrees(math.atan2(away[1], away[0])) + float(turn)
            direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
            tip = centre + direction * radius
            run = part.leader_run(tip, direction)
            if part.try_dimension(pad, lambda p: leader(p, tip, direction, text, "radius", run)):
                break


def _slot(part: _Part, centre: np.ndarray, length: float, radius: float, dimension: bool,
          vertical: bool = False) -> None:
    """A slot (or an obround outline): two half-circle arcs and the two lines that join their ends,
    `length` apart between the arcs' centres, along x or (vertical) along y."""
    pen = part.pen
    cx, cy = float(centre[0]), float(centre[1])
    if vertical:  # bottom arc from 180 to 0 (through 270), top arc from 0 to 180
        ends = ((cx, cy - length / 2, 180.0, 0.0), (cx, cy + length / 2, 0.0, 180.0))
        sides = [((cx - radius, cy - length / 2), (cx - radius, cy + length / 2)),
                 ((cx + radius, cy - length / 2), (cx + radius, cy + length / 2))]
    else:
        ends = ((cx - length / 2, cy, 90.0, 270.0), (cx + length / 2, cy, 270.0, 90.0))
        sides = [((cx - length / 2, y), (cx + length / 2, y)) for y in (cy - radius, cy + radius)]
    pads = []
    for x, y, start, end in ends:
        outline = arc_points(x, y, radius, start, end, max(pen.px_per_mm))
        pads.append(part.add(Arc(x, y, radius, start, end), [Stroke(outline, curved=True)],
                             curve_boxes(outline, pen.margin_mm)))
    for p, q in sides:
        a, b = np.array(p), np.array(q)
        part.add(Line(p[0], p[1], q[0], q[1]), [Stroke(np.array([a, b]))], segment_boxes(a, b, pen.margin_mm))
    if dimension:
        direction = np.array([math.cos(math.radians(60)), math.sin(math.radians(60))])
        tip = np.array([ends[1][0], ends[1][1]]) + direction * radius
        run = part.leader_run(tip, direction)
        part.try_dimension(pads[1], lambda p: leader(p, tip, direction, "R" + format_number(radius), "radius", run))


def _outline(part: _Part, width: float, height: float, fillet: float, chamfer: float) -> None:
    """The part's outer contour: a rectangle, one with rounded corners (lines and arcs sharing their end
    points) or a chamfered closed polyline; its overall sizes are dimensioned below and beside it."""
    pen, rng = part.pen, part.pen.rng
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=float)
    part.outline_box = (0.0, 0.0, width, height)
    if fillet > 0:
        rounded = [bool(rng.random() < 0.8) for _ in range(4)]
        rounded[int(rng.integers(4))] = True
        inset = [fillet if r else 0.0 for r in rounded]
        centres = [(inset[0], inset[0]), (width - inset[1], inset[1]), (width - inset[2], height - inset[2]),
                   (inset[3], height - inset[3])]
        starts = (180.0, 270.0, 0.0, 90.0)
        arc_pads = []
        for k in range(4):
            if rounded[k]:
                cx, cy = centres[k]
                points = arc_points(cx, cy, fillet, starts[k], (starts[k] + 90.0) % 360.0, max(pen.px_per_mm))
                arc_pads.append((part.add(Arc(cx, cy, fillet, starts[k], (starts[k] + 90.0) % 360.0),
                                          [Stroke(points, curved=True)], curve_boxes(points, pen.margin_mm, 3)),
                                 k, np.array([cx, cy])))
        sides = [((inset[0], 0.0), (width - inset[1], 0.0)), ((width, inset[1]), (width, height - inset[2])),
                 ((width - inset[2], height), (inset[3], height)), ((0.0, height - inset[3]), (0.0, inset[0]))]
        for p, q in sides:
            a, b = np.array(p), np.array(q)
            part.add(Line(p[0], p[1], q[0], q[1]), [Stroke(np.array([a, b]))], segment_boxes(a, b, pen.margin_mm))
        first_pad = part.members[0][3]
    elif chamfer > 0:
        c = chamfer
        points = np.array([[c, 0], [width - c, 0], [width, c], [width, height - c], [width - c, height],
                           [c, height], [0, height - c], [0, c]], dtype=float)
        if rng.random() < 0.5:  # two opposite corners only
            points = np.array([[c, 0], [width, 0], [width, height - c], [width - c, height], [0, height], [0, c]],
                              dtype=float)
        first_pad = part.add(Polyline(tuple((float(x), float(y)) for x, y in points), True),
                             [Stroke(points, closed=True)], polyline_boxes(points, pen.margin_mm, True))
        arc_pads = []
    else:
        first_pad = part.add(Rectangle(0.0, 0.0, width, height), [Stroke(corners, closed=True)],
                             polyline_boxes(corners, pen.margin_mm, True))
        arc_pads = []
    is_rectangle = fillet <= 0 and chamfer <= 0
    bottom = (np.array([0.0, 0.0]), np.array([width, 0.0]), np.array([0.0, -1.0]))
    side = ((np.array([0.0, 0.0]), np.array([0.0, height]), np.array([-1.0, 0.0])) if rng.random() < 0.6 else
            (np.array([width, 0.0]), np.array([width, height]), np.array([1.0, 0.0])))
    for (p, q, normal), field, value in ((bottom, "width", width), (side, "height", height)):
        part.try_dimension(first_pad, lambda pad: linear_dimension(pad, p, q, normal, format_number(value), field),
                           keep_field=is_rectangle)
    if arc_pads:  # one radius for all the fillets, on a corner that points away from the other dimensions
        for pad, k, centre in sorted(arc_pads, key=lambda item: -(item[1] in (1, 2)))[:2]:
            angle = starts[k] + 45.0
            direction = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
            tip = centre + direction * fillet
            if part.try_dimension(pad, lambda p: leader(p, tip, direction, "R" + format_number(fillet), "radius",
                                                        pen.text_mm * rng.uniform(1.0, 1.8))):
                break


def _holes(part: _Part, box: Box, pattern: str, budget: int) -> None:
    """Holes inside `box` (x0, y0, x1, y1): one, a row, four at the corners, or a bolt circle."""
    pen, rng = part.pen, part.pen.rng
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    short = min(w, h)
    if budget < 1 or short < 4 * pen.text_mm * 0.5:
        return
    centre_lines = rng.random() < CENTRE_LINE_SHARE
    if pattern == "bolt_circle" and budget >= 4 and short > 6 * pen.text_mm:
        count = int(min(budget - 1, rng.choice([3, 4, 6, 8])))
        pitch = _half(short * rng.uniform(0.28, 0.38))
        radius = _half(max(pen.text_mm * 0.5, min(pitch * 0.25, size_value(rng, 1.0, pitch * 0.3))))
        bore = _half(max(pitch - radius * 2.5, radius * 1.5))
        centre = np.array([_half(x0 + w / 2), _half(y0 + h / 2)])
        _circle(part, centre, bore, True, np.array([0.7071, 0.7071]))
        turn = float(rng.choice([0.0, 45.0, 30.0])) if count != 3 else 90.0
        positions = []
        for k in range(count):
            angle = math.radians(turn + 360.0 * k / count)
            positions.append(np.array([_half(centre[0] + pitch * math.cos(angle)),
                                       _half(centre[1] + pitch * math.sin(angle))]))
        for k, position in enumerate(positions):
            _circle(part, position, radius, k == 0, (position - centre) / max(np.hypot(*(position - centre)), 1e-6))
        if centre_lines:  # the pitch circle is a centre line too
            _dash_dot(part.extra_ink, arc_points(float(centre[0]), float(centre[1]), pitch, 0, 0, 4.0))
            _centre_cross(part, centre, pitch + radius + pen.text_mm * 0.6)
        return
    if pattern == "corners" and budget >= 4:
        inset = _half(short * rng.uniform(0.12, 0.2))
        radius = _half(max(pen.text_mm * 0.4, min(inset * 0.6, size_value(rng, 1.0, inset * 0.7))))
        positions = [np.array(p) for p in ((x0 + inset, y0 + inset), (x1 - inset, y0 + inset),
                                           (x1 - inset, y1 - inset), (x0 + inset, y1 - inset))]
        dim_at = 2
    elif pattern == "row":
        count = int(min(budget, rng.integers(2, 5)))
        spacing = _half(w / (count + 1))
        radius = _half(max(pen.text_mm * 0.4, min(spacing * 0.3, h * 0.25, size_value(rng, 1.0, short * 0.2))))
        y = _half(y0 + h / 2)
        positions = [np.array([_half(x0 + spacing * (k + 1)), y]) for k in range(count)]
        dim_at = count - 1
    else:
        radius = _half(max(pen.text_mm * 0.5, size_value(rng, short * 0.12, short * 0.32)))
        positions = [np.array([_half(x0 + w / 2), _half(y0 + h / 2)])]
        dim_at = 0
    for k, position in enumerate(positions):
        position = np.array([_half(position[0]), _half(position[1])])
        _circle(part, position, radius, k == dim_at, np.array([0.6, 0.8]))
        if centre_lines:
            _centre_cross(part, position, radius + pen.text_mm * 0.6)


# ----------------------------------------------------------------------------------------------
# Parts
# ----------------------------------------------------------------------------------------------


def _plate(part: _Part, size: float, budget: int) -> None:
    rng = part.pen.rng
    width = size_value(rng, size * 0.6, size)
    height = size_value(rng, size * 0.35, size * 0.8)
    shape = rng.choice(["sharp", "fillet", "chamfer"], p=[0.45, 0.35, 0.2]) if budget >= 6 else "sharp"
    fillet = _half(min(width, height) * rng.uniform(0.08, 0.2)) if shape == "fillet" else 0.0
    chamfer = _half(min(width, height) * rng.uniform(0.08, 0.18)) if shape == "chamfer" else 0.0
    _outline(part, width, height, max(fillet, 0.0), max(chamfer, 0.0))
    left = budget - len(part.members)
    inner_margin = _half(max(fillet, chamfer) + min(width, height) * 0.08)
    inner = (inner_margin, inner_margin, width - inner_margin, height - inner_margin)
    choice = rng.choice(["holes", "slot", "pocket"], p=[0.6, 0.2, 0.2])
    if choice == "slot" and left >= 4:
        radius = _half(max(part.pen.text_mm * 0.6, min(height * 0.15, size_value(rng, 1.5, height * 0.2))))
        length = float(round(width * rng.uniform(0.25, 0.45)))  # whole mm: the arc centres stay on the grid
        _slot(part, np.array([_half(width / 2), _half(height / 2)]), length, radius, True)
        left = budget - len(part.members)
        if left >= 2:  # a hole each side of the slot
            for x in (_half(width / 2 - length / 2 - radius) / 2, _half(width - (width / 2 - length / 2 - radius) / 2)):
                hole = _half(min(radius * 0.8, (width / 2 - length / 2 - radius) * 0.3))
                if hole >= 1.0:
                    _circle(part, np.array([_half(x), _half(height / 2)]), hole, x < width / 2,
                            np.array([-0.6, 0.8]))
    elif choice == "pocket" and left >= 1 and shape == "sharp":
        pw, ph = _half(width * rng.uniform(0.4, 0.7)), _half(height * rng.uniform(0.4, 0.7))
        px, py = _half((width - pw) / 2), _half((height - ph) / 2)
        corners = np.array([[px, py], [px + pw, py], [px + pw, py + ph], [px, py + ph]])
        pad = part.add(Rectangle(px, py, pw, ph), [Stroke(corners, closed=True)],
                       polyline_boxes(corners, part.pen.margin_mm, True))
        if rng.random() < HATCH_SHARE * 2:
            _hatch(part.extra_ink, (0.0, 0.0, width, height), (px, py, px + pw, py + ph),
                   spacing=max(part.pen.text_mm * rng.uniform(0.6, 1.2), 1.0), angle=45.0)
        else:  # the pocket's own sizes, written inside it when there is room
            top = (np.array([px, py + ph]), np.array([px + pw, py + ph]), np.array([0.0, -1.0]))
            part.try_dimension(pad, lambda p: linear_dimension(p, *top, format_number(pw), "width"), keep_field=False)
        if budget - len(part.members) >= 1 and min(pw, ph) > 3 * part.pen.text_mm:
            _holes(part, (px, py, px + pw, py + ph), "single", 1)
    else:
        _holes(part, inner, str(rng.choice(["single", "row", "corners", "bolt_circle"])), left)


def _flange(part: _Part, size: float, budget: int) -> None:
    """A round part: outer circle, bore, bolt circle."""
    rng = part.pen.rng
    diameter = size_value(rng, size * 0.6, size, half_share=0.0)
    radius = diameter / 2
    centre = np.array([_half(radius), _half(radius)])
    _circle(part, centre, radius, True, np.array([0.7071, 0.7071]))
    part.outline_box = (0.0, 0.0, 2 * radius, 2 * radius)
    _holes(part, (centre[0] - radius * 0.75, centre[1] - radius * 0.75, centre[0] + radius * 0.75,
                  centre[1] + radius * 0.75), "bolt_circle", budget - 1)


def _bracket(part: _Part, size: float, budget: int) -> None:
    """An L-shaped closed outline with a hole in each leg."""
    pen, rng = part.pen, part.pen.rng
    w, h = size_value(rng, size * 0.6, size), size_value(rng, size * 0.5, size * 0.9)
    tw, th = _half(w * rng.uniform(0.3, 0.45)), _half(h * rng.uniform(0.3, 0.45))
    points = np.array([[0, 0], [w, 0], [w, th], [tw, th], [tw, h], [0, h]], dtype=float)
    pad = part.add(Polyline(tuple((float(x), float(y)) for x, y in points), True), [Stroke(points, closed=True)],
                   polyline_boxes(points, pen.margin_mm, True))
    part.outline_box = (0.0, 0.0, w, h)
    part.try_dimension(pad, lambda p: linear_dimension(p, np.array([0.0, 0.0]), np.array([w, 0.0]),
                                                       np.array([0.0, -1.0]), format_number(w), "length"))
    part.try_dimension(pad, lambda p: linear_dimension(p, np.array([0.0, 0.0]), np.array([0.0, h]),
                                                       np.array([-1.0, 0.0]), format_number(h), "length"))
    hole = _half(max(pen.text_mm * 0.4, min(tw, th) * rng.uniform(0.15, 0.3)))
    spots = [np.array([_half((tw + w) / 2), _half(th / 2)]), np.array([_half(tw / 2), _half((th + h) / 2)])]
    for k, spot in enumerate(spots[:max(0, budget - 1)]):
        _circle(part, spot, hole, k == 0, np.array([0.6, 0.8]))
        if rng.random() < CENTRE_LINE_SHARE:
            _centre_cross(part, spot, hole + pen.text_mm * 0.6)


def _link(part: _Part, size: float, budget: int) -> None:
    """A link (a connecting rod's outline): an obround of two arcs and two lines, a bore at each arc's
    centre, sometimes a slot between them; lying along x or along y."""
    pen, rng = part.pen, part.pen.rng
    radius = _half(size_value(rng, size * 0.1, size * 0.25))
    length = float(round(size_value(rng, max(size * 0.35, radius * 1.5), size * 0.8)))  # centre to centre
    vertical = bool(rng.random() < 0.3)
    along = (length + 2 * radius, 2 * radius)
    width, height = along[::-1] if vertical else along
    centre = np.array([_half(width / 2), _half(height / 2)])
    part.outline_box = (0.0, 0.0, width, height)
    _slot(part, centre, length, radius, True, vertical)
    axis = np.array([0.0, 1.0]) if vertical else np.array([1.0, 0.0])
    bore = _half(max(pen.text_mm * 0.4, radius * rng.uniform(0.3, 0.65)))
    if budget - len(part.members) >= 2:
        for k, sign in enumerate((-1.0, 1.0)):
            _circle(part, centre + sign * axis * length / 2, bore, k == 0, np.array([-0.6, 0.8]))
            if rng.random() < CENTRE_LINE_SHARE:
                _centre_cross(part, centre + sign * axis * length / 2, bore + pen.text_mm * 0.6)
    inner_length = length - 2 * (bore + radius * 0.6)
    inner_radius = _half(min(radius * 0.45, bore))
    if budget - len(part.members) >= 4 and inner_length > 2 * inner_radius > 2.0 and rng.random() < 0.4:
        _slot(part, centre, float(round(inner_length)), inner_radius, rng.random() < 0.5, vertical)


PARTS: dict[str, Callable[[_Part, float, int], None]] = {"plate": _plate, "flange": _flange, "bracket": _bracket,
                                                        "link": _link}
PART_WEIGHTS = {"plate": 0.5, "flange": 0.15, "bracket": 0.15, "link": 0.2}


def part_groups(pen: Pen, size: float, budget: int) -> list[Group] | None:
    """One part of about `size` mm with at most `budget` primitives, around the origin (None: no fit)."""
    rng = pen.rng
    if budget < 2:
        return None
    names = list(PARTS)
    name = names[int(rng.choice(len(names), p=[PART_WEIGHTS[n] for n in names]))]
    part = _Part(pen)
    PARTS[name](part, size, budget)
    if not part.members or len(part.members) > budget:
        return None
    return part.groups()


def layout_with_part(pen: Pen, sheet: Sheet, count: int, types: tuple[str, ...], minimum: int,
                     part_share: float) -> list[Group]:
    """The layout, with a part placed first on a `part_share` of drawings (scattered primitives fill the
    rest of the count around it)."""
    rng = pen.rng
    placed: list[Group] = []
    # part_share 0 draws nothing from the stream: the scattered layouts are exactly the earlier ones.
    if part_share > 0 and count >= 2 and rng.random() < part_share:
        short_side = min(sheet.width, sheet.height)
        size = short_side * float(rng.uniform(0.35, 0.8 if count <= 6 else 0.6))
        members = part_groups(pen, size, count)
        if members is not None and all(g.primitive.TYPE in types for g in members):
            placed = place_together(rng, members, sheet) or []
    return layout(pen, sheet, count, types, minimum, placed)
