"""Turning a read DXF file (`dxf_import.DxfContent`) into contract drawings, rendered like generated ones.

1. **Crops.** A file with more than the contract's 12 primitives is cut into crops of whole
   primitives: the primitives are split in two at the median of their centres along the longer side
   of their extent, again and again, until every part holds at most 12. Each part is one drawing that
   shows its own primitives only (nothing is cut through, nothing unlabelled is inked), with the
   centre lines and dimensions that lie within its extent.
2. **Sheet and scale.** Each drawing gets a drafting scale (1:1 where it fits, else the nearest of
   1, 2 and 5 times a power of ten) that brings its extent to 30..380 mm, and a sheet of its extent
   plus a margin for the dimensions, within the contract's 50..500 mm sides and 2:1 aspect. Every
   coordinate is then put on the 0.1 mm grid, and the ink is drawn from those values.
3. **Dimensions.** A drawing that holds some of the file's DIMENSION entities is dimensioned by them
   (their measured values, redrafted where the file puts them with the generator's own helpers:
   extension lines, arrows, `Ø` and `R` leaders); a size field counts as annotated when a dimension
   measures exactly that field of that primitive. A drawing without any gets dimensions added the way
   the generator adds them (rectangle width and height, `Ø` on circles, `R` on arcs, some line
   lengths), each placed only where its text clears the geometry and other text. Primitives left with
   a size that no dimension writes are labelled `"annotated": false` (contract 1.1).
4. **Rendering.** The synth renderer (`synth.render`: looks, strokes, scan and photo degradations)
   draws the result: there is no second renderer.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np

from cad2program.dxf.importer import Dimension, DxfContent, Ink
from cad2program.dxf.shapes import Shape
from cad2program.contract.program import (MAX_PRIMITIVES, Arc, Circle, Line, Polyline, Primitive, ProgramError,
                                          Rectangle, Sheet, unannotated)
from cad2program.contract.program_text import reading_order

# Drafting scales: 1, 2 and 5 times powers of ten, ordered by how far they are from 1:1.
SCALES = sorted((m * 10.0 ** k for k in range(-5, 4) for m in (1, 2, 5)), key=lambda s: abs(math.log(s)))
EXTENT_MM = (30.0, 380.0)  # a drawing's extent on its sheet, before the margin


@dataclasses.dataclass
class Crop:
    """One drawing's content in sheet millimetres, before annotation."""

    sheet: Sheet
    scale: float  # sheet mm per file mm
    shapes: list[Shape]
    inks: list[Ink]
    dimensions: list[Dimension]
    offset: tuple[float, float] = (0.0, 0.0)  # sheet = file units * unit_mm * scale + offset



def split_into_crops(shapes: list[Shape], limit: int = MAX_PRIMITIVES) -> list[list[int]]:
    """Indices of `shapes`, cut at the median along the longer side until every part has <= limit."""
    if not shapes:
        return []
    boxes = np.array([s.bounds() for s in shapes], float)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2

    def cut(indices: np.ndarray) -> list[list[int]]:
        if len(indices) <= limit:
            return [sorted(indices.tolist())]
        part = boxes[indices]
        extent = part[:, 2:].max(axis=0) - part[:, :2].min(axis=0)
        axis = int(extent[1] > extent[0])
        order = indices[np.argsort(centres[indices, axis], kind="stable")]
        half = len(order) // 2
        return cut(order[:half]) + cut(order[half:])

    return cut(np.arange(len(shapes)))


def choose_scale(extent_mm: float) -> float | None:
    """The drafting scale nearest 1:1 that brings `extent_mm` into EXTENT_MM (None if none does)."""
    for scale in SCALES:
        if EXTENT_MM[0] <= extent_mm * scale <= EXTENT_MM[1]:
            return scale
    return None


def _inside(box, outer, slack: float) -> bool:
    return (box[0] >= outer[0] - slack and box[1] >= outer[1] - slack and box[2] <= outer[2] + slack
            and box[3] <= outer[3] + slack)


def plan_crops(content: DxfContent, skipped: Counter, per_file: int | None = None) -> list[Crop]:
    """The file's drawings on their sheets (mm, 0.1 mm grid still to come); reasons for losses in `skipped`."""
    unit = content.unit_mm
    groups = split_into_crops(content.shapes)
    if per_file is not None and len(groups) > per_file:
        skipped[f"crop beyond --per-file {per_file} (its primitives)"] += sum(len(g) for g in groups[per_file:])
        groups = groups[:per_file]
    crops = []
    for indices in groups:
        shapes = [content.shapes[i] for i in indices]
        boxes = np.array([s.bounds() for s in shapes]) * unit
        region = (*boxes[:, :2].min(axis=0), *boxes[:, 2:].max(axis=0))
        slack = 0.02 * max(region[2] - region[0], region[3] - region[1])

        def near(points: np.ndarray) -> bool:
            pts = points * unit
            box = (pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max())
            return _inside(box, region, slack)

        dims = [d for d in content.dimensions if near(np.array([d.p1, d.p2]))]
        if dims:  # the sheet holds the dimension lines where the file puts them
            located = np.array([d.location for d in dims]) * unit
            boxes = np.vstack([boxes, np.hstack([located, located])])
        # Centre lines run past the outlines they belong to: those within 15% of the extent belong here.
        slack = 0.15 * max(region[2] - region[0], region[3] - region[1])
        inks = [i for i in content.inks if near(i.points)]
        if inks:
            boxes = np.vstack([boxes] + [np.concatenate([i.points.min(axis=0), i.points.max(axis=0)])[None] * unit
                                         for i in inks])
        x0, y0 = boxes[:, :2].min(axis=0)
        x1, y1 = boxes[:, 2:].max(axis=0)
        extent = max(x1 - x0, y1 - y0)
        scale = choose_scale(extent) if extent > 0 else None
        if scale is None:
            skipped[f"drawing of {extent:.3g} mm that no drafting scale fits on a sheet (its primitives)"] += len(shapes)
            continue
        width, height = (x1 - x0) * scale, (y1 - y0) * scale
        margin = max(0.14 * max(width, height), 12.0)
        sheet_w, sheet_h = math.ceil(width + 2 * margin), math.ceil(height + 2 * margin)
        sheet_w, sheet_h = max(sheet_w, 50, math.ceil(sheet_h / 2)), max(sheet_h, 50, math.ceil(sheet_w / 2))
        sheet_w, sheet_h = max(sheet_w, math.ceil(sheet_h / 2)), max(sheet_h, math.ceil(sheet_w / 2))
        dx = (sheet_w - width) / 2 - x0 * scale
        dy = (sheet_h - height) / 2 - y0 * scale
        factor = unit * scale
        inks = [i.scaled(factor, dx, dy) for i in inks]
        dims = [d.scaled(factor, dx, dy) for d in dims]
        crops.append(Crop(Sheet(float(sheet_w), float(sheet_h)), scale,
                          [s.scaled(factor, dx, dy) for s in shapes], inks, dims, (dx, dy)))
    return crops


def to_primitive(shape: Shape, sheet: Sheet) -> Primitive | None:
    """The shape on the 0.1 mm grid as a contract primitive, or None if it breaks the contract there."""
    q = lambda v: round(float(v), 1) + 0.0  # noqa: E731
    try:
        if shape.kind == "line":
            primitive = Line(*map(q, shape.values))
        elif shape.kind == "rectangle":
            primitive = Rectangle(*map(q, shape.values))
        elif shape.kind == "circle":
            primitive = Circle(*map(q, shape.values))
        elif shape.kind == "arc":
            x, y, r, a, b = shape.values
            primitive = Arc(q(x), q(y), q(r), q(a) % 360.0, q(b) % 360.0)
        else:
            points = [(q(x), q(y)) for x, y in shape.points]
            deduped = [p for k, p in enumerate(points) if k == 0 or p != points[k - 1]]
            if shape.closed and len(deduped) > 1 and deduped[-1] == deduped[0]:
                deduped.pop()
            primitive = Polyline(tuple(deduped), shape.closed)
    except ProgramError:
        return None
    return None if primitive.problems(sheet) else primitive


def primitive_strokes(primitive: Primitive, px_per_mm: float):
    from cad2program.synth.sketch import Stroke, arc_points

    if isinstance(primitive, Line):
        return Stroke(np.array([[primitive.x1, primitive.y1], [primitive.x2, primitive.y2]]))
    if isinstance(primitive, Rectangle):
        x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
        return Stroke(np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], float), closed=True)
    if isinstance(primitive, Circle):
        return Stroke(arc_points(primitive.x, primitive.y, primitive.radius, 0, 0, px_per_mm), closed=True,
                      curved=True)
    if isinstance(primitive, Arc):
        return Stroke(arc_points(primitive.x, primitive.y, primitive.radius, primitive.start_angle,
                                 primitive.end_angle, px_per_mm), curved=True)
    return Stroke(np.array(primitive.points, float), closed=primitive.closed)


def dashed(points: np.ndarray, closed: bool, pattern: str, long_side: float) -> list[np.ndarray]:
    """A centre line (long dash, gap, dot, gap) or hidden line (dash, gap) as pieces of ink, in mm."""
    if closed:
        points = np.vstack([points, points[:1]])
    seg = np.hypot(*np.diff(points, axis=0).T)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    unit = 0.012 * long_side
    marks = [(0.0, 2.5 * unit), (3.0 * unit, 3.15 * unit)] if pattern == "centre" else [(0.0, 1.0 * unit)]
    period = 3.65 * unit if pattern == "centre" else 1.6 * unit
    pieces = []
    start = 0.0
    while start < dist[-1]:
        for a, b in marks:
            lo, hi = start + a, min(start + b, dist[-1])
            if lo >= hi:
                continue
            ts = np.concatenate([[lo], dist[(dist > lo) & (dist < hi)], [hi]])
            pieces.append(np.stack([np.interp(ts, dist, points[:, 0]), np.interp(ts, dist, points[:, 1])], axis=1))
        start += period
    return pieces


def annotated_crop(crop: Crop, rng: np.random.Generator, content_style: str, long_side_px: int):
    """(primitives with their annotated flags, drawing groups, pen) for one crop, in reading order."""
    from cad2program import synth
    from cad2program.dxf.dimensions import Drafter
    from cad2program.synth import fonts, layout

    sheet = crop.sheet
    size = synth.image_size(sheet, long_side_px)
    px_per_mm = (size[0] / sheet.width, size[1] / sheet.height)
    pen = synth.sample_pen(rng, content_style, sheet, px_per_mm, synth.GeneratorConfig(), fonts, layout)
    primitives, seen = [], set()
    for shape in crop.shapes:
        primitive = to_primitive(shape, sheet)
        if primitive is not None and primitive not in seen:  # two entities on one another: one primitive
            seen.add(primitive)
            primitives.append(primitive)
    primitives.sort(key=reading_order)
    drafter = Drafter(pen, sheet, primitives, max(px_per_mm))
    if crop.dimensions:
        drafter.file_dimensions(crop.dimensions)
    else:
        drafter.added_dimensions()
    labelled = [p if drafter.fully_annotated(i) or not type(p).SIZE_FIELDS else unannotated(p)
                for i, p in enumerate(primitives)]
    groups = [layout.Group(p, [primitive_strokes(p, max(px_per_mm))], [], [], np.zeros((1, 4)), [])
              for p in primitives]
    ink_strokes = [layout.Stroke(piece, "anno") for ink in crop.inks
                   for piece in dashed(ink.points, ink.closed, ink.pattern, sheet.longer_side)]
    if primitives:
        groups.append(layout.Group(primitives[0], ink_strokes + drafter.strokes, drafter.fills, drafter.labels,
                                   np.zeros((1, 4)), []))
    return labelled, groups, size, drafter.annotations
