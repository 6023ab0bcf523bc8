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

from cad2program.contract.program import (Arc, Circle, Line, Polyline, Primitive, Rectangle, Sheet, format_number,
                                          reading_order)
from cad2program.synth import fonts

# x0, y0, x1, y1 in mm. Plain float tuples while a group is built (tiny numpy arrays cost more to
# make than to use); a built group holds all its boxes as one (k, 4) array for the collision tests.
Box = tuple[float, float, float, float]


@dataclasses.dataclass
class Stroke:
    """A polyline of ink in mm; `curved` strokes are arcs/circles (a hand wobbles them differently)."""

    points: np.ndarray  # (n, 2)
    layer: str = "geom"  # "geom" (the primitives) or "anno" (annotations)
    closed: bool = False
    curved: bool = False


@dataclasses.dataclass
class Label:
    """A rendered text mask centred at `centre` (mm)."""

    centre: np.ndarray
    mask: np.ndarray
    text: str


@dataclasses.dataclass
class Group:
    primitive: Primitive
    strokes: list[Stroke]
    fills: list[np.ndarray]  # filled polygons (arrowheads, dots) in mm
    labels: list[Label]
    boxes: np.ndarray  # (k, 4)
    annotations: list[tuple[str, str]]  # (field, text written on the drawing)

    def translate(self, dx: float, dy: float) -> "Group":
        shift = np.array([dx, dy])
        return Group(
            primitive=translate_primitive(self.primitive, dx, dy),
            strokes=[Stroke(s.points + shift, s.layer, s.closed, s.curved) for s in self.strokes],
            fills=[f + shift for f in self.fills],
            labels=[Label(label.centre + shift, label.mask, label.text) for label in self.labels],
            boxes=self.boxes + np.array([dx, dy, dx, dy]),
            annotations=list(self.annotations))

    def bounds(self) -> np.ndarray:
        """(4,) box around all the group's boxes."""
        return np.concatenate([self.boxes[:, :2].min(axis=0), self.boxes[:, 2:].max(axis=0)])


@dataclasses.dataclass
class Pen:
    """How annotations are drafted on one drawing: varied per drawing, never changing the truth."""

    text_mm: float  # digit height
    face: fonts.FontFace
    font_px: float
    px_per_mm: tuple[float, float]
    arrow: str  # "filled", "open", "closed", "tick" or "dot"
    arrow_mm: float
    arrow_width: float  # half width / length
    vertical_text: str  # "rotated" (reads bottom to top) or "horizontal"
    placement: str  # "above" (text over the dimension line) or "inline" (line broken for the text)
    ext_gap_mm: float  # gap between the object and an extension line
    ext_over_mm: float  # extension line past the dimension line
    dim_offset_mm: float  # object to dimension line
    text_jitter_deg: float  # hand-written text is not quite straight
    margin_mm: float  # clearance between groups
    rng: np.random.Generator

    @property
    def gap_mm(self) -> float:
        return 0.3 * self.text_mm

    def text(self, text: str, angle: float = 0.0) -> tuple[np.ndarray, float, float]:
        """Mask and its width and height in mm; hand-written text tilts a little."""
        if self.text_jitter_deg:
            angle += float(self.rng.uniform(-self.text_jitter_deg, self.text_jitter_deg))
        mask = fonts.render_text(self.face, self.font_px, text, angle)
        return mask, mask.shape[1] / self.px_per_mm[0], mask.shape[0] / self.px_per_mm[1]


# ----------------------------------------------------------------------------------------------
# Values on the grid, boxes
# ----------------------------------------------------------------------------------------------


def grid_value(rng: np.random.Generator, low: float, high: float, half_share: float = 0.15) -> float | None:
    """A value in [low, high]: a whole number, or (a `half_share` of the time) one ending in .5."""
    whole = np.arange(math.ceil(low), math.floor(high) + 1)
    halves = np.arange(math.ceil(low - 0.5), math.floor(high - 0.5) + 1) + 0.5
    options = halves if (rng.random() < half_share and halves.size) or not whole.size else whole
    if not options.size:
        return None
    return float(options[rng.integers(options.size)])


def size_value(rng: np.random.Generator, low: float, high: float, half_share: float = 0.15) -> float:
    """A size drawn log-uniformly in [low, high], on the whole/half grid, at least 1."""
    low, high = max(low, 1.0), max(high, low, 1.0)
    raw = math.exp(rng.uniform(math.log(low), math.log(high)))
    if rng.random() < half_share:
        return max(1.0, math.floor(raw) + 0.5)
    return float(max(1, round(raw)))


def points_box(points: np.ndarray, pad: float = 0.0) -> Box:
    (x0, y0), (x1, y1) = points.min(axis=0).tolist(), points.max(axis=0).tolist()
    return (x0 - pad, y0 - pad, x1 + pad, y1 + pad)


def segment_boxes(p: np.ndarray | Sequence[float], q: np.ndarray | Sequence[float], pad: float) -> list[Box]:
    """Boxes covering a segment tightly: a slanted segment gets several small boxes, not one big one."""
    px, py = float(p[0]), float(p[1])  # Python floats: same arithmetic, far less overhead
    qx, qy = float(q[0]), float(q[1])
    return _segment_boxes(px, py, qx, qy, pad)


def _segment_boxes(px: float, py: float, qx: float, qy: float, pad: float) -> list[Box]:
    if px == qx or py == qy:
        return [(min(px, qx) - pad, min(py, qy) - pad, max(px, qx) + pad, max(py, qy) + pad)]
    length = math.hypot(qx - px, qy - py)
    pieces = max(1, min(8, int(length / max(4 * pad, 1e-6))))
    boxes = []
    for k in range(pieces):
        ax, ay = px + (qx - px) * k / pieces, py + (qy - py) * k / pieces
        bx, by = px + (qx - px) * (k + 1) / pieces, py + (qy - py) * (k + 1) / pieces
        boxes.append((min(ax, bx) - pad, min(ay, by) - pad, max(ax, bx) + pad, max(ay, by) + pad))
    return boxes


def polyline_boxes(points: np.ndarray, pad: float, closed: bool = False) -> list[Box]:
    pts = points.tolist()  # one conversion, then plain float arithmetic per segment
    if closed:
        pts.append(pts[0])
    boxes: list[Box] = []
    for (ax, ay), (bx, by) in zip(pts[:-1], pts[1:]):
        boxes.extend(_segment_boxes(float(ax), float(ay), float(bx), float(by), pad))
    return boxes


def curve_boxes(points: np.ndarray, pad: float, pieces: int = 8) -> list[Box]:
    """Boxes over consecutive runs of a densely sampled curve."""
    ends = np.linspace(0, len(points) - 1, pieces + 1).round().astype(int)
    return [points_box(points[a:b + 1], pad) for a, b in zip(ends[:-1], ends[1:]) if b > a]


def text_box(centre: np.ndarray, width: float, height: float, pad: float = 0.0) -> Box:
    cx, cy = float(centre[0]), float(centre[1])
    return (cx - width / 2 - pad, cy - height / 2 - pad, cx + width / 2 + pad, cy + height / 2 + pad)


def boxes_overlap(a: Sequence[Box], b: Sequence[Box]) -> bool:
    if not len(a) or not len(b):
        return False
    a_arr, b_arr = np.asarray(a)[:, None, :], np.asarray(b)[None, :, :]
    hit = ((a_arr[..., 0] < b_arr[..., 2]) & (b_arr[..., 0] < a_arr[..., 2])
           & (a_arr[..., 1] < b_arr[..., 3]) & (b_arr[..., 1] < a_arr[..., 3]))
    return bool(hit.any())


def segment_hits_box(p: np.ndarray, q: np.ndarray, box: Box) -> bool:
    """Liang-Barsky clipping: does segment pq cross the box?"""
    t0, t1 = 0.0, 1.0
    d = q - p
    for axis in (0, 1):
        low, high = box[axis], box[axis + 2]
        if abs(d[axis]) < 1e-12:
            if not low <= p[axis] <= high:
                return False
            continue
        ta, tb = (low - p[axis]) / d[axis], (high - p[axis]) / d[axis]
        t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
        if t0 > t1:
            return False
    return True


def translate_primitive(primitive: Primitive, dx: float, dy: float) -> Primitive:
    if isinstance(primitive, Line):
        return Line(primitive.x1 + dx, primitive.y1 + dy, primitive.x2 + dx, primitive.y2 + dy)
    if isinstance(primitive, Polyline):
        return Polyline(tuple((x + dx, y + dy) for x, y in primitive.points), primitive.closed)
    return dataclasses.replace(primitive, x=primitive.x + dx, y=primitive.y + dy)


def arc_points(cx: float, cy: float, radius: float, start: float, end: float, px_per_mm: float) -> np.ndarray:
    """Points along a counter-clockwise arc (a full circle when start == end + 360)."""
    span = (end - start) % 360.0 or 360.0
    count = int(min(max(radius * px_per_mm * math.radians(span) / 2.0, 12), 400))
    angles = np.deg2rad(start + np.linspace(0.0, span, count + 1))
    return np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)


# ----------------------------------------------------------------------------------------------
# Annotation pieces
# ----------------------------------------------------------------------------------------------


class Sketchpad:
    """Collects one group's strokes, arrowheads, labels and boxes."""

    def __init__(self, pen: Pen):
        self.pen = pen
        self.strokes: list[Stroke] = []
        self.fills: list[np.ndarray] = []
        self.labels: list[Label] = []
        self.boxes: list[Box] = []
        self.annotations: list[tuple[str, str]] = []

    def anno_line(self, *points: np.ndarray) -> None:
        pts = np.array(points, dtype=float)
        self.strokes.append(Stroke(pts, "anno"))
        self.boxes.extend(polyline_boxes(pts, self.pen.margin_mm))

    def arrow(self, tip: np.ndarray, direction: np.ndarray) -> None:
        """An arrowhead whose tip is `tip`, pointing along `direction` (a unit vector)."""
        pen = self.pen
        tx, ty = float(tip[0]), float(tip[1])  # Python floats: a handful of numbers, numpy costs more
        dx, dy = float(direction[0]), float(direction[1])
        length = pen.arrow_mm
        bx, by = tx - dx * length, ty - dy * length
        sx, sy = -dy * length * pen.arrow_width, dx * length * pen.arrow_width
        if pen.arrow == "filled":
            self.fills.append(np.array([(tx, ty), (bx + sx, by + sy), (bx - sx, by - sy)]))
        elif pen.arrow == "open":
            self.strokes.append(Stroke(np.array([(bx + sx, by + sy), (tx, ty), (bx - sx, by - sy)]), "anno"))
        elif pen.arrow == "closed":
            self.strokes.append(Stroke(np.array([(tx, ty), (bx + sx, by + sy), (bx - sx, by - sy)]), "anno",
                                       closed=True))
        elif pen.arrow == "tick":  # architectural oblique stroke through the end point
            ox, oy = (dx - dy) * length * 0.45, (dy + dx) * length * 0.45
            self.strokes.append(Stroke(np.array([(tx - ox, ty - oy), (tx + ox, ty + oy)]), "anno"))
        else:  # dot
            self.fills.append(arc_points(tx, ty, length * 0.22, 0, 0, 4.0)[:-1])

    def label(self, text: str, centre: np.ndarray, mask: np.ndarray, width: float, height: float) -> Box:
        self.labels.append(Label(np.asarray(centre, dtype=float), mask, text))
        box = text_box(centre, width, height, self.pen.margin_mm)
        self.boxes.append(box)
        return box

    def group(self, primitive: Primitive, geom: list[Stroke], geom_boxes: list[Box]) -> Group:
        return Group(primitive, geom + self.strokes, self.fills, self.labels, np.array(geom_boxes + self.boxes),
                     self.annotations)


def _reading_angle(direction: np.ndarray) -> float:
    """Angle of text written along `direction`, turned so it never reads upside down."""
    angle = math.degrees(math.atan2(direction[1], direction[0]))
    if angle <= -90 or angle > 90:
        angle = angle + 180 if angle <= -90 else angle - 180
    return angle


def _up(angle: float) -> np.ndarray:
    rad = math.radians(angle)
    return np.array([-math.sin(rad), math.cos(rad)])


def linear_dimension(pad: Sketchpad, p1: np.ndarray, p2: np.ndarray, normal: np.ndarray, text: str,
                     field: str) -> None:
    """A drafter's linear dimension of p1-p2, on the side `normal` points to (away from the object)."""
    pen, rng = pad.pen, pad.pen.rng
    length = float(np.hypot(*(p2 - p1)))
    along_dir = (p2 - p1) / length
    vertical = abs(along_dir[1]) > 0.5
    angle = 90.0 if vertical and pen.vertical_text == "rotated" else 0.0
    mask, w, h = pen.text(text, angle)
    along, across = (h, w) if vertical else (w, h)
    gap, arrow = pen.gap_mm, pen.arrow_mm
    # Text beside the dimension line: on its reading-up side, or outside for upright text on a vertical dim.
    side = normal if (vertical and angle == 0.0) else _up(angle)
    inline = pen.placement == "inline" and length >= along + 2 * gap + 2.4 * arrow
    inside_arrows = length >= (along + 2 * gap + 2.4 * arrow if inline else 2.6 * arrow)
    offset = pen.dim_offset_mm + (across / 2 if inline else 0.0)
    if not inline and float(side @ normal) < 0:  # text between the object and the dimension line
        offset = max(offset, pen.ext_gap_mm + across + 2 * gap)
    q1, q2 = p1 + normal * offset, p2 + normal * offset
    mid = (q1 + q2) / 2
    pad.anno_line(p1 + normal * pen.ext_gap_mm, q1 + normal * pen.ext_over_mm)
    pad.anno_line(p2 + normal * pen.ext_gap_mm, q2 + normal * pen.ext_over_mm)
    if inline:
        centre = mid
        pad.anno_line(q1, mid - along_dir * (along / 2 + gap))
        pad.anno_line(mid + along_dir * (along / 2 + gap), q2)
    else:
        end1, end2 = q1, q2
        if not inside_arrows:
            end1, end2 = q1 - along_dir * 2 * arrow, q2 + along_dir * 2 * arrow
        centre = mid + side * (gap + across / 2)
        if along > length - 0.2 * pen.text_mm:  # no room between the extension lines: beyond the end
            flip = 1.0 if rng.random() < 0.5 else -1.0
            anchor = (q2 if flip > 0 else q1) + along_dir * flip * (2 * arrow + along / 2 + gap)
            centre = anchor + side * (gap + across / 2)
            if flip > 0:
                end2 = q2 + along_dir * (2 * arrow + along + 2 * gap)
            else:
                end1 = q1 - along_dir * (2 * arrow + along + 2 * gap)
        pad.anno_line(end1, end2)
    if inside_arrows:
        pad.arrow(q1, -along_dir)
        pad.arrow(q2, along_dir)
    else:
        pad.arrow(q1, along_dir)
        pad.arrow(q2, -along_dir)
    pad.label(text, centre, mask, w, h)
    pad.annotations.append((field, text))


def leader(pad: Sketchpad, tip: np.ndarray, outward: np.ndarray, text: str, field: str,
           run_mm: float, arrow_at_tip: bool = True) -> None:
    """A leader from `tip` out along `outward`, a short horizontal shoulder, and the text."""
    pen = pad.pen
    mask, w, h = pen.text(text, 0.0)
    elbow = tip + outward * run_mm
    heading = 1.0 if outward[0] >= 0 else -1.0
    if pen.rng.random() < 0.5:  # text on the shoulder (under it when the leader heads down)
        shoulder = elbow + np.array([heading * (w + 2 * pen.gap_mm), 0.0])
        above = 1.0 if outward[1] >= 0 else -1.0
        centre = (elbow + shoulder) / 2 + np.array([0.0, above * (pen.gap_mm + h / 2)])
    else:  # text at the end of the shoulder
        shoulder = elbow + np.array([heading * pen.text_mm * 0.8, 0.0])
        centre = shoulder + np.array([heading * (2 * pen.gap_mm + w / 2), 0.0])
    pad.anno_line(tip, elbow, shoulder)
    if arrow_at_tip:
        pad.arrow(tip, -outward)
    pad.label(text, centre, mask, w, h)
    pad.annotations.append((field, text))


def centre_mark(pad: Sketchpad, centre: np.ndarray, size: float) -> None:
    for direction in (np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        pad.anno_line(centre - direction * size, centre + direction * size)


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
    text_angle = _reading_angle(direction)
    upright = fonts.render_text(pen.face, pen.font_px, text, 0.0)
    w0, h0 = upright.shape[1] / pen.px_per_mm[0], upright.shape[0] / pen.px_per_mm[1]
    up = _up(text_angle)
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
