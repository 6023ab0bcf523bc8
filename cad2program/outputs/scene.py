"""Geometry shared by the DXF, PNG and SVG outputs, all in sheet millimetres (origin bottom-left, y up).

- `fit_sheet`: the smallest sheet that holds a program (when the user gives none);
- `primitive_polyline`: a primitive as points, what the raster backends draw;
- `dimension_items`: where a drafter would put each size annotation (extension lines, dimension
  lines, arrows, `Ø`/`R` leaders and their text), laid out once so PNG and SVG show the same drawing.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable, Sequence

import numpy as np

from cad2program.contract.geometry import Point, arc_sweep, primitive_polyline
from cad2program.contract.program import Arc, Circle, Line, Primitive, Rectangle, Sheet, format_number

# Annotation digits are 2.5% to 4% of the sheet's longer side tall (the contract); 3% sits in the middle.
TEXT_HEIGHT_FRACTION = 0.03
# Digit (cap) height / font size for common sans fonts (DejaVu Sans 0.73): converts the drafter's
# text height into the font size SVG and Pillow expect.
CAP_HEIGHT_PER_EM = 0.73
# Average advance of digits and Ø/R per unit of text height (DejaVu Sans digits: 0.636 em / 0.73 em).
CHAR_WIDTH_PER_HEIGHT = 0.87
MIN_SHEET_SIDE = 50.0
SHEET_MARGIN = 0.10


def text_height(sheet: Sheet) -> float:
    """Height of the dimension digits in mm for this sheet."""
    return TEXT_HEIGHT_FRACTION * sheet.longer_side


def text_width(text: str, height: float) -> float:
    """Estimated width in mm of a one-line label, for layout (a font is not needed to place it)."""
    return CHAR_WIDTH_PER_HEIGHT * height * len(text)


def dimension_text(value: float, prefix: str = "") -> str:
    """`12.5` -> `R12.5`, `40.0` -> `40`: the value as it is written on the drawing."""
    return f"{prefix}{format_number(value)}"


def size_label(primitive: Primitive) -> str:
    """A short text with the primitive's values: `40 × 20`, `Ø25`, `R12.5`, `L44.7`, `4 pts closed`."""
    if isinstance(primitive, Rectangle):
        return f"{format_number(primitive.width)} × {format_number(primitive.height)}"
    if isinstance(primitive, Circle):
        return dimension_text(2 * primitive.radius, "Ø")
    if isinstance(primitive, Arc):
        return dimension_text(primitive.radius, "R")
    if isinstance(primitive, Line):
        length = math.hypot(primitive.x2 - primitive.x1, primitive.y2 - primitive.y1)
        return f"L{format_number(round(length, 1))}"
    return f"{len(primitive.points)} pts{' closed' if primitive.closed else ''}"


# ----------------------------------------------------------------------------------------------
# Extents and sheets
# ----------------------------------------------------------------------------------------------


def _arc_extreme_points(arc: Arc) -> list[Point]:
    """End points plus every axis crossing (0, 90, 180, 270 degrees) the arc passes through."""
    sweep = arc_sweep(arc)
    angles = [arc.start_angle, arc.start_angle + sweep]
    angles += [a for a in (0.0, 90.0, 180.0, 270.0) if (a - arc.start_angle) % 360.0 <= sweep]
    return [(arc.x + arc.radius * math.cos(math.radians(a)), arc.y + arc.radius * math.sin(math.radians(a)))
            for a in angles]


def primitive_extent_points(primitive: Primitive) -> list[Point]:
    """Points whose bounding box is the primitive's bounding box."""
    if isinstance(primitive, Line):
        return [(primitive.x1, primitive.y1), (primitive.x2, primitive.y2)]
    if isinstance(primitive, Rectangle):
        return [(primitive.x, primitive.y), (primitive.x + primitive.width, primitive.y + primitive.height)]
    if isinstance(primitive, Circle):
        r = abs(primitive.radius)
        return [(primitive.x - r, primitive.y - r), (primitive.x + r, primitive.y + r)]
    if isinstance(primitive, Arc):
        return _arc_extreme_points(arc=primitive)
    return list(primitive.points)


def fit_sheet(primitives: Iterable[Primitive]) -> Sheet:
    """The smallest sheet (0.1 mm grid, >= 50 mm a side) holding the primitives plus a 10% margin.

    The origin is fixed (coordinates are absolute), so only the far edges grow: width is the largest
    x times 1.1, rounded up to 0.1 mm; the same for height.
    """
    points = [p for primitive in primitives for p in primitive_extent_points(primitive)]
    max_x = max((x for x, _ in points), default=0.0)
    max_y = max((y for _, y in points), default=0.0)

    def side(extent: float) -> float:
        # The 1e-9 keeps exact products such as 110.00000000000001 from rounding up to 110.1.
        return max(MIN_SHEET_SIDE, math.ceil(extent * (1 + SHEET_MARGIN) * 10 - 1e-9) / 10)

    return Sheet(side(max_x), side(max_y))


# ----------------------------------------------------------------------------------------------
# Dimension layout
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stroke:
    """A thin annotation line (extension, dimension, leader or centre mark)."""

    points: tuple[Point, ...]


@dataclasses.dataclass(frozen=True)
class Arrow:
    """A filled arrow head whose tip is at `tip`, pointing along the unit vector `direction`."""

    tip: Point
    direction: Point
    length: float


@dataclasses.dataclass(frozen=True)
class Label:
    """Text centred on `centre`; `rotation` 90 reads bottom to top (vertical dimensions)."""

    centre: Point
    text: str
    height: float
    rotation: float = 0.0


DimensionItem = Stroke | Arrow | Label


@dataclasses.dataclass(frozen=True)
class _Style:
    """Drafting proportions, all relative to the text height (ISO 129-like)."""

    text: float

    @property
    def gap(self) -> float:          # text to dimension line
        return 0.4 * self.text

    @property
    def offset(self) -> float:       # object to dimension line
        return 2.2 * self.text

    @property
    def extension_gap(self) -> float:   # object to the start of an extension line
        return 0.4 * self.text

    @property
    def overshoot(self) -> float:    # extension line past the dimension line
        return 0.5 * self.text

    @property
    def arrow(self) -> float:
        return 0.8 * self.text


Box = tuple[float, float, float, float]  # x min, y min, x max, y max in mm



def _box_inside(centre: Point, width: float, height: float, sheet: Sheet) -> bool:
    x, y = centre
    return (x - width / 2 >= 0 and x + width / 2 <= sheet.width
            and y - height / 2 >= 0 and y + height / 2 <= sheet.height)


def _centred_box(centre: Point, width: float, height: float) -> Box:
    return (centre[0] - width / 2, centre[1] - height / 2, centre[0] + width / 2, centre[1] + height / 2)


class _Obstacles:
    """What a dimension should not cross: the geometry (points every `spacing` mm along every
    primitive) and the annotations placed so far (boxes)."""

    def __init__(self, primitives: Sequence[Primitive], spacing: float):
        chunks = [np.zeros((0, 2))]
        for primitive in primitives:
            points, closed = primitive_polyline(primitive, spacing / 10)
            path = np.array(points + points[:1] if closed else points, dtype=float).reshape(-1, 2)
            for a, b in zip(path[:-1], path[1:]):
                steps = max(1, math.ceil(float(np.hypot(*(b - a))) / spacing))
                chunks.append(a + (b - a) * (np.arange(steps + 1)[:, None] / steps))
        self.points = np.concatenate(chunks)
        self.boxes: list[Box] = []

    def cost(self, box: Box) -> float:
        """Geometry points under the box, plus a heavy price for covering another annotation."""
        x0, y0, x1, y1 = box
        p = self.points
        under = int(((p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)).sum())
        covered = sum(1 for b in self.boxes if b[0] < x1 and x0 < b[2] and b[1] < y1 and y0 < b[3])
        return under + 100 * covered


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one primitive's dimensions go, shared by the drawing and the DXF: a rectangle's
    dimension lines (y of the width's, x of the height's); a circle's or arc's leader direction."""

    width_line_y: float | None = None
    height_line_x: float | None = None
    leader_degrees: float | None = None
    leader_shoulder: float = 1.0  # the shoulder runs right (+1) or left (-1) of the knee


def _best(options: list[tuple[bool, Box, object]], obstacles: _Obstacles) -> tuple[Box, object]:
    """The option that fits the sheet and crosses the least; ties go to the earlier (preferred) one."""
    _, box, value = min(options, key=lambda o: (not o[0], obstacles.cost(o[1])))
    obstacles.boxes.append(box)
    return box, value


def _place_rectangle(rect: Rectangle, sheet: Sheet, style: _Style, obstacles: _Obstacles) -> Placement:
    """Dimension lines one offset from the rectangle, below/right first, then the other side, then
    one step further out. Only the dimension line and its text must stay clear: extension lines
    crossing other geometry are normal drafting."""
    x0, y0, x1, y1 = rect.x, rect.y, rect.x + rect.width, rect.y + rect.height
    t, a = style.text, style.arrow
    steps = (style.offset, style.offset + 2.2 * t)
    # Width: its text sits above its line (between line and rectangle when below it).
    half = max(rect.width / 2 + a, text_width(dimension_text(rect.width), t) / 2)
    mid = (x0 + x1) / 2
    options = []
    for step in steps:
        for y in (y0 - step, y1 + step):
            box = (mid - half, y - a / 2, mid + half, y + style.gap + t)
            options.append((box[1] >= 0 and box[3] <= sheet.height, box, y))
    _, width_y = _best(options, obstacles)
    # Height: its text sits left of its line, read upwards.
    half = max(rect.height / 2 + a, text_width(dimension_text(rect.height), t) / 2)
    mid = (y0 + y1) / 2
    options = []
    for step in steps:
        for x in (x1 + step, x0 - step):
            box = (x - style.gap - t, mid - half, x + a / 2, mid + half)
            options.append((box[0] >= 0 and box[2] <= sheet.width, box, x))
    _, height_x = _best(options, obstacles)
    return Placement(width_line_y=width_y, height_line_x=height_x)


def _linear_items(p0: Point, p1: Point, unit: Point, style: _Style, text: str, label_centre: Point,
                  rotation: float) -> list[DimensionItem]:
    """Dimension line from p0 to p1 (along `unit`) with its arrows and text. When the text and two
    arrows do not fit between the extension lines, the arrows go outside pointing in, as drafters do."""
    length = math.dist(p0, p1)
    ux, uy = unit
    if length >= text_width(text, style.text) + 2.5 * style.arrow:
        return [Stroke((p0, p1)), Arrow(p0, (-ux, -uy), style.arrow), Arrow(p1, (ux, uy), style.arrow),
                Label(label_centre, text, style.text, rotation)]
    reach = 2.2 * style.arrow
    before = (p0[0] - ux * reach, p0[1] - uy * reach)
    after = (p1[0] + ux * reach, p1[1] + uy * reach)
    return [Stroke((before, after)), Arrow(p0, (ux, uy), style.arrow), Arrow(p1, (-ux, -uy), style.arrow),
            Label(label_centre, text, style.text, rotation)]


def _rectangle_items(rect: Rectangle, placement: Placement, style: _Style) -> list[DimensionItem]:
    items: list[DimensionItem] = []
    x0, y0, x1, y1 = rect.x, rect.y, rect.x + rect.width, rect.y + rect.height
    t = style.text
    y_dim = placement.width_line_y
    side = -1 if y_dim < y0 else 1
    for x in (x0, x1):
        edge = y0 if side < 0 else y1
        items.append(Stroke(((x, edge + side * style.extension_gap), (x, y_dim + side * style.overshoot))))
    items += _linear_items((x0, y_dim), (x1, y_dim), (1.0, 0.0), style, dimension_text(rect.width),
                           ((x0 + x1) / 2, y_dim + style.gap + t / 2), 0.0)
    x_dim = placement.height_line_x
    side = 1 if x_dim > x1 else -1
    for y in (y0, y1):
        edge = x1 if side > 0 else x0
        items.append(Stroke(((edge + side * style.extension_gap, y), (x_dim + side * style.overshoot, y))))
    items += _linear_items((x_dim, y0), (x_dim, y1), (0.0, 1.0), style, dimension_text(rect.height),
                           (x_dim - style.gap - t / 2, (y0 + y1) / 2), 90.0)
    return items


def _leader_geometry(centre: Point, radius: float, degrees: float, side: float, width: float,
                     style: _Style) -> tuple[Point, Point, Point, Point]:
    """Tip on the curve, knee past it, shoulder end, and the label's centre above the shoulder."""
    t = style.text
    ux, uy = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    tip = (centre[0] + radius * ux, centre[1] + radius * uy)
    knee = (tip[0] + 1.2 * t * ux, tip[1] + 1.2 * t * uy)
    end = (knee[0] + side * (width + style.gap), knee[1])
    return tip, knee, end, ((knee[0] + end[0]) / 2, knee[1] + style.gap + t / 2)


def _place_leader(primitive: Circle | Arc, sheet: Sheet, style: _Style, obstacles: _Obstacles) -> Placement:
    """A radial leader out past the curve to a horizontal shoulder carrying the text: the first
    direction whose text fits the sheet and crosses nothing, shoulders pointing away from the curve
    first (back across it only when nothing else fits)."""
    directions, text, _ = _leader_plan(primitive)
    t, width = style.text, text_width(text, style.text)
    centre = (primitive.x, primitive.y)
    outward, inward = [], []
    for degrees in directions:
        ux = math.cos(math.radians(degrees))
        for side in ((1.0, -1.0) if ux >= 0 else (-1.0, 1.0)):
            _, knee, end, label = _leader_geometry(centre, primitive.radius, degrees, side, width, style)
            box = (min(knee[0], end[0]), knee[1] - 0.2 * t, max(knee[0], end[0]), knee[1] + style.gap + t)
            option = (_box_inside(label, width, t, sheet), box, (degrees, side))
            (outward if side * ux >= 0 else inward).append(option)
    _, (degrees, side) = _best(outward + inward, obstacles)
    return Placement(leader_degrees=degrees, leader_shoulder=side)


def _leader_items(primitive: Circle | Arc, placement: Placement, style: _Style) -> list[DimensionItem]:
    _, text, both_ends = _leader_plan(primitive)
    degrees = placement.leader_degrees
    ux, uy = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    side = placement.leader_shoulder
    centre = (primitive.x, primitive.y)
    tip, knee, end, label = _leader_geometry(centre, primitive.radius, degrees, side, text_width(text, style.text),
                                             style)
    start = (centre[0] - primitive.radius * ux, centre[1] - primitive.radius * uy) if both_ends else centre
    items: list[DimensionItem] = [Stroke((start, tip, knee, end)), Arrow(tip, (ux, uy), style.arrow)]
    if both_ends:
        items.append(Arrow(start, (-ux, -uy), style.arrow))
    items.append(Label(label, text, style.text))
    return items


def _centre_mark(centre: Point, style: _Style) -> list[DimensionItem]:
    half = 0.35 * style.text
    x, y = centre
    return [Stroke(((x - half, y), (x + half, y))), Stroke(((x, y - half), (x, y + half)))]


def _leader_plan(primitive: Circle | Arc) -> tuple[tuple[float, ...], str, bool]:
    """Candidate leader directions (degrees, preferred first), the text, and whether it spans a diameter."""
    if isinstance(primitive, Circle):
        return (45.0, 135.0, -45.0, -135.0), dimension_text(2 * primitive.radius, "Ø"), True
    middle = primitive.start_angle + arc_sweep(primitive) / 2
    quarter = arc_sweep(primitive) / 4
    return (middle, middle - quarter, middle + quarter), dimension_text(primitive.radius, "R"), False


def plan_dimensions(primitives: Sequence[Primitive], sheet: Sheet) -> list[Placement | None]:
    """Where each primitive's dimensions go (None: it has none), avoiding the sheet's edges, the
    geometry and the dimensions placed before it, in program order."""
    style = _Style(text_height(sheet))
    obstacles = _Obstacles(primitives, spacing=0.5 * style.text)
    plan: list[Placement | None] = []
    for primitive in primitives:
        if isinstance(primitive, Rectangle) and primitive.width > 0 and primitive.height > 0:
            plan.append(_place_rectangle(primitive, sheet, style, obstacles))
        elif isinstance(primitive, (Circle, Arc)) and primitive.radius > 0:
            plan.append(_place_leader(primitive, sheet, style, obstacles))
        else:
            plan.append(None)
    return plan


def dimension_items(primitives: Iterable[Primitive], sheet: Sheet) -> list[DimensionItem]:
    """Size annotations as a drafter draws them: rectangle width and height as linear dimensions,
    circle diameters (`Ø`) and arc radii (`R`) as leaders. Lines and polylines carry none (the
    contract annotates sizes only). Primitives with a non-positive size get no annotation."""
    primitives = list(primitives)
    style = _Style(text_height(sheet))
    items: list[DimensionItem] = []
    for primitive, placement in zip(primitives, plan_dimensions(primitives, sheet)):
        if placement is None:
            continue
        if isinstance(primitive, Rectangle):
            items += _rectangle_items(primitive, placement, style)
        else:
            items += _centre_mark((primitive.x, primitive.y), style)
            items += _leader_items(primitive, placement, style)
    return items
