"""Dimensions on an imported drawing, drafted with the generator's own helpers (`synth.layout`).

A `Drafter` holds one drawing's fixed primitives (they cannot move, as the generator's groups do) and
places dimensions around them: each one is built on a `layout.Sketchpad` exactly as the generator
builds it (`linear_dimension`, `leader`, the diameter line, centre marks), then kept only when its
text lies on the sheet clear of every outline and of the text and dimension lines already placed.
It records which size fields of which primitive a kept dimension writes (`fully_annotated`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict

import numpy as np

from cad2program.dxf.importer import Dimension
from cad2program.contract.program import Arc, Circle, Line, Primitive, Rectangle, Sheet, format_number


def _segments(points: np.ndarray, closed: bool = False) -> np.ndarray:
    pts = np.vstack([points, points[:1]]) if closed else points
    return np.concatenate([pts[:-1], pts[1:]], axis=1)  # (n, 4): x1, y1, x2, y2


def segments_hit_box(segments: np.ndarray, box) -> bool:
    """Does any segment (n, 4) cross the box (x0, y0, x1, y1)? Liang-Barsky clipping, vectorised."""
    if not len(segments):
        return False
    x0, y0, x1, y1 = box
    s = segments
    near = ((np.maximum(s[:, 0], s[:, 2]) >= x0) & (np.minimum(s[:, 0], s[:, 2]) <= x1)
            & (np.maximum(s[:, 1], s[:, 3]) >= y0) & (np.minimum(s[:, 1], s[:, 3]) <= y1))
    s = s[near]
    if not len(s):
        return False
    t0, t1 = np.zeros(len(s)), np.ones(len(s))
    ok = np.ones(len(s), bool)
    for axis, (low, high) in enumerate(((x0, x1), (y0, y1))):
        p, d = s[:, axis], s[:, axis + 2] - s[:, axis]
        flat = np.abs(d) < 1e-12
        ok &= ~flat | ((p >= low) & (p <= high))
        safe = np.where(flat, 1.0, d)
        ta, tb = (low - p) / safe, (high - p) / safe
        t0 = np.where(flat, t0, np.maximum(t0, np.minimum(ta, tb)))
        t1 = np.where(flat, t1, np.minimum(t1, np.maximum(ta, tb)))
    return bool((ok & (t0 <= t1)).any())


def _unit(angle_deg: float) -> np.ndarray:
    rad = math.radians(angle_deg)
    return np.array([math.cos(rad), math.sin(rad)])


class Drafter:
    def __init__(self, pen, sheet: Sheet, primitives: list[Primitive], px_per_mm: float):
        from cad2program.dxf.drawings import primitive_strokes

        self.pen, self.sheet, self.primitives = pen, sheet, primitives
        self.strokes, self.fills, self.labels = [], [], []
        self.annotations: list[tuple[int | None, str, str]] = []  # (primitive index or None, field, text)
        self.done: dict[int, set[str]] = defaultdict(set)
        strokes = [primitive_strokes(p, px_per_mm) for p in primitives]
        self.geometry = np.concatenate([_segments(s.points, s.closed) for s in strokes]) if strokes \
            else np.zeros((0, 4))
        self.text_boxes: list[tuple[float, float, float, float]] = []
        self.anno_segments = np.zeros((0, 4))
        self.border = 0.02 * sheet.longer_side
        self.tolerance = 0.01 * sheet.longer_side

    # ----- placing ---------------------------------------------------------------------------------

    def _label_box(self, label) -> tuple[float, float, float, float]:
        h, w = label.mask.shape
        half_w, half_h = w / self.pen.px_per_mm[0] / 2, h / self.pen.px_per_mm[1] / 2
        pad = 0.3 * self.pen.gap_mm
        cx, cy = float(label.centre[0]), float(label.centre[1])
        return (cx - half_w - pad, cy - half_h - pad, cx + half_w + pad, cy + half_h + pad)

    def _fits(self, pad) -> bool:
        low, high_x, high_y = self.border, self.sheet.width - self.border, self.sheet.height - self.border
        for stroke in pad.strokes:
            pts = stroke.points
            if pts[:, 0].min() < low or pts[:, 1].min() < low or pts[:, 0].max() > high_x or pts[:, 1].max() > high_y:
                return False
        new_segments = np.concatenate([_segments(s.points, s.closed) for s in pad.strokes]) if pad.strokes \
            else np.zeros((0, 4))
        boxes = [self._label_box(label) for label in pad.labels]
        for box in boxes:
            if box[0] < low or box[1] < low or box[2] > high_x or box[3] > high_y:
                return False
            if segments_hit_box(self.geometry, box) or segments_hit_box(self.anno_segments, box):
                return False
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in self.text_boxes):
                return False
        return not any(segments_hit_box(new_segments, b) for b in self.text_boxes)

    def _place(self, build, index: int | None) -> bool:
        """Builds one dimension on a fresh Sketchpad; keeps it if it fits. True when kept."""
        from cad2program.synth import layout

        pad = layout.Sketchpad(self.pen)
        if build(pad) is False or not pad.labels or not self._fits(pad):
            return False
        self.strokes += pad.strokes
        self.fills += pad.fills
        self.labels += pad.labels
        self.text_boxes += [self._label_box(label) for label in pad.labels]
        if pad.strokes:
            self.anno_segments = np.concatenate([self.anno_segments] + [_segments(s.points, s.closed)
                                                                        for s in pad.strokes])
        for field, text in pad.annotations:
            self.annotations.append((index, field, text))
            if index is not None and field in ("width", "height", "radius"):
                self.done[index].add(field)
        return True

    def fully_annotated(self, index: int) -> bool:
        return set(type(self.primitives[index]).SIZE_FIELDS) <= self.done[index]

    # ----- the pieces ------------------------------------------------------------------------------

    def _linear(self, index, field, p1, p2, normal, value, offset=None) -> bool:
        from cad2program.synth import layout

        pen = self.pen if offset is None else dataclasses.replace(self.pen, dim_offset_mm=offset)

        def build(pad):
            pad.pen = pen
            layout.linear_dimension(pad, np.asarray(p1, float), np.asarray(p2, float), np.asarray(normal, float),
                                    format_number(value), field)
        return self._place(build, index)

    def _radial(self, index, centre, radius, text, directions, centre_mark=False) -> bool:
        """A leader from the curve out along the first of `directions` where it fits."""
        from cad2program.synth import layout

        rng = self.pen.rng
        for direction in directions:
            def build(pad, direction=direction):
                tip = np.asarray(centre, float) + direction * radius
                layout.leader(pad, tip, direction, text, "radius", self.pen.text_mm * rng.uniform(1.0, 2.2))
                if centre_mark and radius > 1.5 * self.pen.text_mm:
                    layout.centre_mark(pad, np.asarray(centre, float), min(radius * 0.25, self.pen.text_mm * 0.5))
            if self._place(build, index):
                return True
        return False

    def _diameter_line(self, index, circle: Circle, text: str) -> bool:
        from cad2program.synth import layout

        shift = np.array([circle.x, circle.y])

        def build(pad):
            if not layout.diameter_line(pad, circle.radius, text):
                return False
            for stroke in pad.strokes:
                stroke.points = stroke.points + shift
            pad.fills = [f + shift for f in pad.fills]
            for label in pad.labels:
                label.centre = label.centre + shift
        return self._place(build, index)

    # ----- dimensions added where the file has none -------------------------------------------------

    def added_dimensions(self) -> None:
        rng = self.pen.rng
        for index in rng.permutation(len(self.primitives)):
            primitive, index = self.primitives[index], int(index)
            if isinstance(primitive, Rectangle):
                x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
                below = rng.random() < 0.7
                for y_edge, normal in ([(y, (0, -1)), (y + h, (0, 1))][::1 if below else -1]):
                    if self._linear(index, "width", (x, y_edge), (x + w, y_edge), normal, w):
                        break
                left = rng.random() < 0.6
                for x_edge, normal in ([(x, (-1, 0)), (x + w, (1, 0))][::1 if left else -1]):
                    if self._linear(index, "height", (x_edge, y), (x_edge, y + h), normal, h):
                        break
            elif isinstance(primitive, Circle):
                text = "\u00d8" + format_number(2 * primitive.radius)
                if rng.random() < 0.45 and self._diameter_line(index, primitive, text):
                    continue
                start = float(rng.uniform(25, 65))
                self._radial(index, (primitive.x, primitive.y), primitive.radius, text,
                             [_unit(start + 90 * k) for k in rng.permutation(4)], rng.random() < 0.4)
            elif isinstance(primitive, Arc):
                span = (primitive.end_angle - primitive.start_angle) % 360.0 or 360.0
                angles = [primitive.start_angle + span * f for f in (0.5, 0.3, 0.7, 0.15, 0.85)]
                self._radial(index, (primitive.x, primitive.y), primitive.radius,
                             "R" + format_number(primitive.radius), [_unit(a) for a in angles], rng.random() < 0.4)
            elif isinstance(primitive, Line) and rng.random() < 0.4:
                a, b = np.array([primitive.x1, primitive.y1]), np.array([primitive.x2, primitive.y2])
                if a[0] != b[0] and a[1] != b[1]:
                    continue  # the generator dimensions only axis-aligned lines
                length = float(np.hypot(*(b - a)))
                normal = np.array([-(b - a)[1], (b - a)[0]]) / length
                for side in (normal, -normal)[::1 if rng.random() < 0.5 else -1]:
                    if self._linear(index, "length", a, b, side, length):
                        break

    # ----- the file's own dimensions ------------------------------------------------------------------

    def file_dimensions(self, dimensions: list[Dimension]) -> None:
        for dim in dimensions:
            value = round(dim.value, 1)
            if value <= 0:
                continue
            if dim.kind == "linear":
                self._file_linear(dim, value)
            else:
                self._file_radial(dim, value)

    def _matching_field(self, dim: Dimension, value: float) -> tuple[int | None, str]:
        """Which rectangle's width or height the linear dimension measures (None, "length" if none)."""
        t = self.tolerance
        horizontal, vertical = abs(dim.direction[1]) < 1e-3, abs(dim.direction[0]) < 1e-3
        xs, ys = sorted((dim.p1[0], dim.p2[0])), sorted((dim.p1[1], dim.p2[1]))
        for index, p in enumerate(self.primitives):
            if not isinstance(p, Rectangle):
                continue
            if horizontal and p.width == value and abs(xs[0] - p.x) <= t and abs(xs[1] - p.x - p.width) <= t:
                return index, "width"
            if vertical and p.height == value and abs(ys[0] - p.y) <= t and abs(ys[1] - p.y - p.height) <= t:
                return index, "height"
        return None, "length"

    def _file_linear(self, dim: Dimension, value: float) -> None:
        d = dim.direction / max(float(np.hypot(*dim.direction)), 1e-12)
        n = np.array([-d[1], d[0]])
        # Measured points on a common base line: through the origin nearer the dimension line.
        o1, o2 = float(n @ (dim.location - dim.p1)), float(n @ (dim.location - dim.p2))
        base = dim.p1 if abs(o1) <= abs(o2) else dim.p2
        a = base + d * float(d @ (dim.p1 - base))
        b = base + d * float(d @ (dim.p2 - base))
        offset = float(n @ (dim.location - base))
        if abs(offset) < 1e-9:
            offset = self.pen.dim_offset_mm
        normal = n if offset > 0 else -n
        index, field = self._matching_field(dim, value)
        # Where the file puts it; failing that, where the generator would, on either side.
        for side, distance in ((normal, max(abs(offset), self.pen.text_mm)), (normal, None), (-normal, None)):
            if self._linear(index, field, a, b, side, value, distance):
                return

    def _file_radial(self, dim: Dimension, value: float) -> None:
        centre, on_curve = dim.p1, dim.p2
        radius = value / 2 if dim.kind == "diameter" else value
        index = None
        for k, p in enumerate(self.primitives):
            if isinstance(p, (Circle, Arc)) and p.radius == round(radius, 1) \
                    and math.hypot(p.x - centre[0], p.y - centre[1]) <= self.tolerance:
                index, radius = k, p.radius
                break
        text = ("\u00d8" if dim.kind == "diameter" else "R") + format_number(value)
        toward = on_curve - centre
        first = math.degrees(math.atan2(toward[1], toward[0])) if np.hypot(*toward) > 1e-9 else 45.0
        self._radial(index, centre, radius, text, [_unit(first + a) for a in (0, 90, 180, 270)])
