"""The drawing kit of the generator, in sheet millimetres: strokes, labels and the pen that draws them,
the boxes that keep groups apart, the sketchpad a group is drawn on, and the dimension annotations
(linear dimensions, leaders, centre marks) as drafters draw them."""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from cad2program.contract.program import Line, Polyline, Primitive
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


def reading_angle(direction: np.ndarray) -> float:
    """Angle of text written along `direction`, turned so it never reads upside down."""
    angle = math.degrees(math.atan2(direction[1], direction[0]))
    if angle <= -90 or angle > 90:
        angle = angle + 180 if angle <= -90 else angle - 180
    return angle


def text_up(angle: float) -> np.ndarray:
    """The unit vector pointing up the letters of text written at `angle` degrees."""
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
    side = normal if (vertical and angle == 0.0) else text_up(angle)
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
