"""Part-like drawing programs for the foreign battery: plates, flanges, brackets, links, covers, shafts.

This generator is the battery's own and shares nothing with `cad2program.synth` (not its layout,
not its sampling): a part is composed as a drafter composes one (an outline, then holes, bolt
patterns, slots, fillets, pockets), placed on a sheet with room around it for the dimensions, and
described as a `Part`: the exact primitives (the label), which of them carry their own dimension,
and the drafting plan that every battery renderer realises its own way (dimensions, centre lines,
centre marks, pitch circles, hatching, a border frame). Nothing here draws.

Every coordinate is on the contract's 0.1 mm grid and every arc is counter-clockwise from
start_angle to end_angle with both angles in [0, 360); arcs' centres lie on the sheet.
"""

from __future__ import annotations

import dataclasses
import math
import random

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet, program_problems

MAX_PRIMITIVES = 12
SHEETS = {"A4": (297, 210), "A5": (210, 148), "A3": (420, 297)}
HOLE_DIAMETERS = (4, 5, 6, 6.6, 8, 9, 10, 11, 12, 14, 16, 18, 20, 22, 24, 26, 30)


def q(value: float) -> float:
    """A value on the contract's 0.1 grid."""
    return round(value, 1) + 0.0


def angle(value: float) -> float:
    """An angle in [0, 360) on the 0.1 grid."""
    return q(value % 360.0) % 360.0


@dataclasses.dataclass
class Dimension:
    """One dimension the drawing shows. linear: p1, p2 measured along `direction` (0 horizontal, 90
    vertical), its dimension line `offset` mm from p1 (perpendicular, signed: +up/+right).
    diameter / radius: `center`, `radius`, leader `direction` in degrees."""

    kind: str
    p1: tuple[float, float] = (0.0, 0.0)
    p2: tuple[float, float] = (0.0, 0.0)
    direction: float = 0.0
    offset: float = 0.0
    center: tuple[float, float] = (0.0, 0.0)
    radius: float = 0.0
    inside: bool = False  # radius text inside the arc (its outside is material)
    at: float = 0.0  # linear: where the dimension line runs (y when horizontal, x when vertical), set by the layout

    @property
    def value(self) -> float:
        if self.kind == "linear":
            axis = 0 if self.direction == 0 else 1
            return q(abs(self.p2[axis] - self.p1[axis]))
        return q(2 * self.radius) if self.kind == "diameter" else q(self.radius)


@dataclasses.dataclass
class Part:
    """A drawing: sheet, primitives (the truth) and the drafting plan around them."""

    family: str
    sheet: Sheet
    primitives: list = dataclasses.field(default_factory=list)
    annotated: list = dataclasses.field(default_factory=list)  # one bool a primitive
    dimensions: list = dataclasses.field(default_factory=list)
    centre_lines: list = dataclasses.field(default_factory=list)  # ((x1, y1), (x2, y2))
    centre_marks: list = dataclasses.field(default_factory=list)  # (x, y, half size)
    pitch_circles: list = dataclasses.field(default_factory=list)  # (x, y, radius), drawn dash-dot
    hatches: list = dataclasses.field(default_factory=list)  # list of boundary loops, see `hatch_*`
    frame: bool = False
    text_height: float = 7.0

    def label(self, image_key: str, **extra) -> dict:
        """The contract's labels.jsonl object; primitives without their own dimension say so."""
        primitives = []
        for primitive, annotated in zip(self.primitives, self.annotated):
            obj = primitive.to_json()
            if type(primitive).SIZE_FIELDS and not annotated:
                obj["annotated"] = False
            primitives.append(obj)
        return {"image": image_key, "sheet": self.sheet.to_json(), "primitives": primitives,
                "family": self.family, **extra}


class _Builder:
    """Collects a part in local millimetres (origin at the part's bottom-left), then places it."""

    def __init__(self, rng: random.Random, family: str):
        self.rng, self.family = rng, family
        self.items: list[tuple[str, tuple, bool]] = []  # (type, numbers, annotated)
        self.dims: list[Dimension] = []
        self.centre_lines, self.centre_marks, self.pitch_circles, self.hatches = [], [], [], []
        self.width = self.height = 0.0
        self.sheet_side = 300.0

    def count(self) -> int:
        return len(self.items)

    def room(self, n: int) -> bool:
        return self.count() + n <= MAX_PRIMITIVES

    def add(self, kind: str, numbers: tuple, annotated: bool = True):
        self.items.append((kind, numbers, annotated))

    def hole(self, x, y, r, dimension: bool, leader: float | None = None, mark: bool = True):
        self.add("circle", (x, y, r), dimension)
        if dimension:
            self.dims.append(Dimension("diameter", center=(x, y), radius=r,
                                       direction=leader if leader is not None else self.rng.choice((45, 135, 30, 60, 120))))
        if mark:
            self.centre_marks.append((x, y, r + max(2.0, 0.3 * r)))

    def linear(self, p1, p2, direction, offset):
        if abs((p2[0] - p1[0]) if direction == 0 else (p2[1] - p1[1])) >= 2:
            self.dims.append(Dimension("linear", p1=p1, p2=p2, direction=direction, offset=offset))


def _pick_hole(rng: random.Random, limit: float, low: float = 4) -> float:
    options = [d for d in HOLE_DIAMETERS if low <= d <= limit]
    return rng.choice(options) / 2 if options else q(max(2.0, limit / 2))


def _grid(rng: random.Random, low: float, high: float, step: float) -> float:
    """A size between low and high on a drafter's grid (5 mm for outlines, 1 mm for features)."""
    start = math.ceil(low / step - 1e-9) * step
    count = max(0, int((high - start) // step + 1e-9))
    return q(start + step * rng.randint(0, count))


def _rounded_outline(b: _Builder, w, h, r, dimension_radius: bool):
    """A rectangle with four fillets: 4 lines and 4 arcs meeting at shared end points."""
    b.add("line", (r, 0, w - r, 0))
    b.add("line", (w, r, w, h - r))
    b.add("line", (w - r, h, r, h))
    b.add("line", (0, h - r, 0, r))
    corners = [((w - r, r), 270, 0), ((w - r, h - r), 0, 90), ((r, h - r), 90, 180), ((r, r), 180, 270)]
    labelled = b.rng.randrange(4)
    for i, ((cx, cy), start, end) in enumerate(corners):
        b.add("arc", (cx, cy, r, start, end), dimension_radius and i == labelled)
        if dimension_radius and i == labelled:
            b.dims.append(Dimension("radius", center=(cx, cy), radius=r, direction=(start + end + (360 if end < start else 0)) / 2))


def _slot(b: _Builder, x1, y1, x2, y2, r, dimension: bool):
    """An obround slot between two centres (horizontal or vertical): two arcs and two lines."""
    if y1 == y2:  # horizontal, x1 < x2
        b.add("line", (x1, y1 - r, x2, y1 - r))
        b.add("line", (x2, y1 + r, x1, y1 + r))
        b.add("arc", (x2, y1, r, 270, 90), dimension)
        b.add("arc", (x1, y1, r, 90, 270), False)
        leader = 45
    else:  # vertical, y1 < y2
        b.add("line", (x1 + r, y1, x1 + r, y2))
        b.add("line", (x1 - r, y2, x1 - r, y1))
        b.add("arc", (x1, y2, r, 0, 180), dimension)
        b.add("arc", (x1, y1, r, 180, 0), False)
        leader = 60
    if dimension:
        cx, cy = (x2, y1) if y1 == y2 else (x1, y2)
        b.dims.append(Dimension("radius", center=(cx, cy), radius=r, direction=leader))
    b.centre_lines.append(((x1 - (r + 3) * (y1 == y2), y1 - (r + 3) * (x1 == x2)),
                           (x2 + (r + 3) * (y1 == y2), y2 + (r + 3) * (x1 == x2))))


def _bolt_pattern(b: _Builder, cx, cy, pitch_radius, count, hole_r, start_deg, dimension: bool):
    b.pitch_circles.append((cx, cy, pitch_radius))
    labelled = b.rng.randrange(count)
    for i in range(count):
        a = math.radians(start_deg + 360 * i / count)
        b.hole(q(cx + pitch_radius * math.cos(a)), q(cy + pitch_radius * math.sin(a)), hole_r,
               dimension and i == labelled, leader=start_deg + 360 * i / count, mark=False)


# ---------------------------------------------------------------------------------------------
# Families: each fills a builder in local coordinates, sized for `span` mm of the sheet.
# ---------------------------------------------------------------------------------------------


def _plate(b: _Builder, span_w, span_h):
    rng = b.rng
    w, h = _grid(rng, 0.5 * span_w, span_w, 5), _grid(rng, 0.45 * span_h, span_h, 5)
    b.width, b.height = w, h
    rounded = rng.random() < 0.45 and min(w, h) >= 30
    if rounded:
        r = _grid(rng, 3, min(w, h) / 5, 1)
        _rounded_outline(b, w, h, r, dimension_radius=rng.random() < 0.7)
    else:
        b.add("rectangle", (0, 0, w, h), True)
        r = 0
    b.linear((0, 0), (w, 0), 0, -rng.choice((10, 12, 15)))
    b.linear((w, 0), (w, h), 90, rng.choice((10, 12, 15)))
    feature = rng.choice(("corners", "corners", "centre", "slot", "pocket", "pattern"))
    inset = r if rounded else _grid(rng, 6, min(w, h) / 4, 1)
    hole_r = _pick_hole(rng, min(2 * inset - 2, min(w, h) / 4), 4) if inset >= 3 else 2
    if feature in ("corners", "pattern") or rounded:
        if b.room(4):
            for i, (x, y) in enumerate(((inset, inset), (w - inset, inset), (w - inset, h - inset), (inset, h - inset))):
                b.hole(x, y, min(hole_r, inset - 1) if rounded else hole_r, i == 0)
            b.linear((0, h), (inset, h - inset), 0, 8 + inset)
    if feature == "centre" and b.room(2):
        big = _pick_hole(rng, min(w, h) / 2, 10)
        b.hole(q(w / 2), q(h / 2), big, True)
        if rng.random() < 0.6:
            b.hole(q(w / 2), q(h / 2), q(big + _grid(rng, 2, 6, 1)), rng.random() < 0.7, leader=-45, mark=False)
        b.centre_lines += [((q(w / 2), -5), (q(w / 2), h + 5)), ((-5, q(h / 2)), (w + 5, q(h / 2)))]
    if feature == "slot" and b.room(4):
        r_slot = _grid(rng, 2, max(2, min(w, h) / 8), 0.5)
        length = _grid(rng, 2 * r_slot + 2, max(2 * r_slot + 2, w / 2), 1)
        x1, y = q((w - length) / 2), q(h / 2)
        _slot(b, x1, y, q(x1 + length), y, r_slot, True)
        b.linear((x1, y), (q(x1 + length), y), 0, q(h / 2 + 8))
    if feature == "pocket" and b.room(1):
        m = _grid(rng, 5, min(w, h) / 3, 1)
        b.add("rectangle", (m, m, q(w - 2 * m), q(h - 2 * m)), True)
        b.linear((m, h - m), (w - m, h - m), 0, m + 10)
        b.linear((m, m), (m, h - m), 90, -(m + 10))
        if rng.random() < 0.3:
            b.hatches.append([("poly", [(m, m), (w - m, m), (w - m, h - m), (m, h - m)])])
    if feature == "pattern" and b.room(3) and min(w, h) >= 50:
        cx, cy, pr = q(w / 2), q(h / 2), _grid(rng, 8, min(w, h) / 4, 1)
        _bolt_pattern(b, cx, cy, pr, 3, _pick_hole(rng, pr * 0.6, 4), 90, True)


def _flange(b: _Builder, span_w, span_h):
    rng = b.rng
    # Never smaller than a few text heights, or the diameters' texts would cover the part.
    outer = _grid(rng, max(0.3 * min(span_w, span_h), 0.09 * b.sheet_side), 0.5 * min(span_w, span_h), 2.5)
    b.width = b.height = 2 * outer
    c = outer
    b.hole(c, c, outer, True, leader=rng.choice((30, 45, 60)), mark=False)
    bore = _grid(rng, 0.2 * outer, 0.45 * outer, 1)
    b.hole(c, c, bore, True, leader=rng.choice((200, 225, 240)), mark=False)
    if rng.random() < 0.5:
        hub = q(bore + _grid(rng, 3, 0.15 * outer + 3, 1))
        b.hole(c, c, hub, rng.random() < 0.6, leader=300, mark=False)
        if rng.random() < 0.4:
            b.hatches.append([("circle", (c, c, hub)), ("circle", (c, c, bore))])
    else:
        hub = bore
    pitch = q((hub + outer) / 2)
    count = rng.choice((3, 4, 4, 6, 6, 8))
    count = min(count, MAX_PRIMITIVES - b.count())
    hole_r = _pick_hole(rng, min(0.6 * (outer - hub), 2 * math.pi * pitch / count * 0.35), 4)
    _bolt_pattern(b, c, c, pitch, count, hole_r, rng.choice((0, 45, 90, 30)), True)
    ext = outer + 6
    b.centre_lines += [((c - ext, c), (c + ext, c)), ((c, c - ext), (c, c + ext))]


def _bracket(b: _Builder, span_w, span_h):
    rng = b.rng
    w, h = _grid(rng, 0.5 * span_w, span_w, 5), _grid(rng, 0.5 * span_h, span_h, 5)
    t1, t2 = _grid(rng, 0.25 * h, 0.45 * h, 5), _grid(rng, 0.25 * w, 0.45 * w, 5)
    b.width, b.height = w, h
    if rng.random() < 0.5:
        b.add("polyline", ((0, 0), (w, 0), (w, t1), (t2, t1), (t2, h), (0, h)))
    else:  # the same L with a fillet in its inner corner: lines and one arc sharing end points
        r = _grid(rng, 3, min(w - t2, h - t1) / 2, 1)
        pts = [(0, 0), (w, 0), (w, t1), (t2 + r, t1)]
        for p, n in zip(pts, pts[1:]):
            b.add("line", (*p, *n))
        b.add("arc", (t2 + r, t1 + r, r, 180, 270), True)
        b.dims.append(Dimension("radius", center=(t2 + r, t1 + r), radius=r, direction=225, inside=True))
        for p, n in zip([(t2, t1 + r), (t2, h), (0, h)], [(t2, h), (0, h), (0, 0)]):
            b.add("line", (*p, *n))
    b.linear((0, 0), (w, 0), 0, -12)
    b.linear((0, 0), (0, h), 90, -12)
    b.linear((w, 0), (w, t1), 90, 10)
    b.linear((0, h), (t2, h), 0, 10)
    for (x, y, room) in (((t2 + w) / 2, t1 / 2, min(t1, w - t2)), (t2 / 2, (t1 + h) / 2, min(t2, h - t1))):
        if b.room(1) and room >= 10:
            b.hole(q(x), q(y), _pick_hole(rng, room / 2, 4), rng.random() < 0.8)


def _link(b: _Builder, span_w, span_h):
    rng = b.rng
    r = _grid(rng, 0.15 * span_h, 0.3 * span_h, 1)
    length = _grid(rng, 2 * r + 5, max(2 * r + 5, span_w - 2 * r), 5)
    b.width, b.height = q(length + 2 * r), q(2 * r)
    x1, x2, y = r, q(r + length), r
    _slot(b, x1, y, x2, y, r, True)
    b.linear((x1, y), (x2, y), 0, r + 10)
    bore = _pick_hole(rng, r, 4)
    b.hole(x1, y, bore, True, leader=225)
    b.hole(x2, y, bore if rng.random() < 0.6 else _pick_hole(rng, r, 4), rng.random() < 0.5, leader=315)
    if rng.random() < 0.5 and b.room(4) and length > 4 * r:
        inner = float(max(2, round(0.4 * r)))
        _slot(b, q(x1 + 2 * r), y, q(x2 - 2 * r), y, inner, rng.random() < 0.5)


def _cover(b: _Builder, span_w, span_h):
    rng = b.rng
    w, h = _grid(rng, 0.5 * span_w, span_w, 5), _grid(rng, 0.5 * span_h, span_h, 5)
    b.width, b.height = w, h
    b.add("rectangle", (0, 0, w, h), True)
    m = _grid(rng, 4, min(w, h) / 4, 1)
    b.add("rectangle", (m, m, q(w - 2 * m), q(h - 2 * m)), rng.random() < 0.7)
    b.linear((0, 0), (w, 0), 0, -12)
    b.linear((0, 0), (0, h), 90, -12)
    if b.items[-1][2]:
        b.linear((m, h - m), (w - m, h - m), 0, m + 10)
        b.linear((w - m, m), (w - m, h - m), 90, m + 10)
    if rng.random() < 0.7:
        hr = _pick_hole(rng, max(4, m - 1), 3)
        for i, (x, y) in enumerate(((m / 2, m / 2), (w - m / 2, m / 2), (w - m / 2, h - m / 2), (m / 2, h - m / 2))):
            b.hole(q(x), q(y), hr, i == 2, mark=False)
    if rng.random() < 0.4 and b.room(1):
        b.hole(q(w / 2), q(h / 2), _pick_hole(rng, min(w, h) / 3 - m, 6), True)
        b.centre_lines += [((q(w / 2), q(m - 3)), (q(w / 2), q(h - m + 3))), ((q(m - 3), q(h / 2)), (q(w - m + 3), q(h / 2)))]


def _polygon_plate(b: _Builder, span_w, span_h):
    rng = b.rng
    w, h = _grid(rng, 0.5 * span_w, span_w, 5), _grid(rng, 0.5 * span_h, span_h, 5)
    b.width, b.height = w, h
    shape = rng.choice(("chamfered", "hexagon", "trapezoid"))
    if shape == "chamfered":
        c = _grid(rng, 3, min(w, h) / 4, 1)
        pts = ((c, 0), (w - c, 0), (w, c), (w, h - c), (w - c, h), (c, h), (0, h - c), (0, c))
    elif shape == "hexagon":
        side = min(w, h / math.sqrt(3) * 2) / 2
        w, h = q(2 * side), q(side * math.sqrt(3))
        b.width, b.height = w, h
        pts = ((q(side / 2), 0), (q(1.5 * side), 0), (w, q(h / 2)), (q(1.5 * side), h), (q(side / 2), h), (0, q(h / 2)))
    else:
        c = _grid(rng, 5, w / 4, 5)
        pts = ((0, 0), (w, 0), (w - c, h), (c, h))
    b.add("polyline", pts, True)
    b.linear((0, 0), (w, 0), 0, -12)
    b.linear((w, 0), (w, h), 90, 12)
    if rng.random() < 0.8:
        b.hole(q(w / 2), q(h / 2), _pick_hole(rng, min(w, h) / 2.5, 5), True)
        b.centre_lines += [((q(w / 2), -4), (q(w / 2), h + 4)), ((-4, q(h / 2)), (w + 4, q(h / 2)))]
        if rng.random() < 0.4:
            pr = q(min(w, h) * 0.32)
            _bolt_pattern(b, q(w / 2), q(h / 2), pr, rng.choice((3, 4)), _pick_hole(rng, pr * 0.3, 3), 90, True)


def _shaft(b: _Builder, span_w, span_h):
    """A stepped shaft's side view: rectangles sharing their edges on one axis, a centre line along it."""
    rng = b.rng
    steps = rng.randint(2, 4)
    lengths = [_grid(rng, 0.12 * span_w, 0.3 * span_w, 5) for _ in range(steps)]
    diams = [_grid(rng, 0.25 * span_h, 0.7 * span_h, 2) for _ in range(steps)]
    height = max(diams)
    b.width, b.height = q(sum(lengths)), height
    x = 0.0
    for i, (length, d) in enumerate(zip(lengths, diams)):
        y0 = q((height - d) / 2)
        b.add("rectangle", (q(x), y0, length, d), True)
        b.linear((q(x), y0), (q(x + length), y0), 0, -(y0 + 10))
        b.linear((q(x + length), y0), (q(x + length), q(y0 + d)), 90, 6 + (i == steps - 1) * 6)
        x += length
    b.centre_lines.append(((-6, q(height / 2)), (q(x + 6), q(height / 2))))
    if rng.random() < 0.4 and b.room(2):  # a cross hole seen from the side
        i = rng.randrange(steps)
        cx = q(sum(lengths[:i]) + lengths[i] / 2)
        b.hole(cx, q(height / 2), _pick_hole(rng, min(lengths[i], diams[i]) / 2.5, 3), True)


def _profile(b: _Builder, span_w, span_h):
    """A bent strip's profile drawn as one open polyline."""
    rng = b.rng
    w, h = _grid(rng, 0.5 * span_w, span_w, 5), _grid(rng, 0.4 * span_h, span_h, 5)
    b.width, b.height = w, h
    flange = _grid(rng, 0.15 * w, 0.3 * w, 5)
    kind = rng.choice(("U", "Z", "hat"))
    if kind == "U":
        pts = ((0, h), (0, 0), (w, 0), (w, h))
    elif kind == "Z":
        pts = ((0, h), (flange, h), (w - flange, 0), (w, 0))
    else:
        pts = ((0, 0), (flange, 0), (flange, h), (w - flange, h), (w - flange, 0), (w, 0))
    b.add("openpolyline", pts, True)
    b.linear((0, 0), (w, 0), 0, -12)
    b.linear((w, 0), (w, h), 90, 12)


FAMILIES = {"plate": _plate, "flange": _flange, "bracket": _bracket, "link": _link, "cover": _cover,
            "polygon": _polygon_plate, "shaft": _shaft, "profile": _profile}
FAMILY_WEIGHTS = {"plate": 5, "flange": 3, "bracket": 3, "link": 2, "cover": 2, "polygon": 2, "shaft": 2, "profile": 1}


def _sheet(rng: random.Random) -> Sheet:
    choice = rng.choice(("A4", "A4", "A5", "A3", "free", "free"))
    if choice == "free":
        w = _grid(rng, 120, 320, 10)
        h = _grid(rng, max(60, w / 2), min(w, 240), 10)
        return Sheet(w, h)
    return Sheet(*SHEETS[choice])


def _to_primitive(kind: str, numbers: tuple, dx: float, dy: float):
    if kind == "line":
        x1, y1, x2, y2 = numbers
        return Line(q(x1 + dx), q(y1 + dy), q(x2 + dx), q(y2 + dy))
    if kind == "rectangle":
        x, y, w, h = numbers
        return Rectangle(q(x + dx), q(y + dy), q(w), q(h))
    if kind == "circle":
        x, y, r = numbers
        return Circle(q(x + dx), q(y + dy), q(r))
    if kind == "arc":
        x, y, r, a, b = numbers
        return Arc(q(x + dx), q(y + dy), q(r), angle(a), angle(b))
    points = tuple((q(x + dx), q(y + dy)) for x, y in numbers)
    return Polyline(points, closed=(kind == "polyline"))


def _shift(point, dx, dy):
    return (q(point[0] + dx), q(point[1] + dy))


def make_part(seed: int) -> Part:
    """One part drawing, the same for the same seed."""
    rng = random.Random(seed)
    for attempt in range(50):
        sheet = _sheet(rng)
        family = rng.choices(list(FAMILY_WEIGHTS), weights=list(FAMILY_WEIGHTS.values()))[0]
        frame = rng.random() < 0.35 and sheet.longer_side >= 250
        text_height = q(rng.uniform(0.027, 0.036) * sheet.longer_side)
        # Room for dimensions: about five text heights on each side, more inside a frame.
        margin = 5.2 * text_height + (10 if frame else 0)
        span_w, span_h = sheet.width - 2 * margin, sheet.height - 2 * margin
        if span_w < 30 or span_h < 25:
            continue
        b = _Builder(rng, family)
        b.sheet_side = sheet.longer_side
        FAMILIES[family](b, span_w, span_h)
        if not (1 <= b.count() <= MAX_PRIMITIVES) or b.width > span_w + 1e-6 or b.height > span_h + 1e-6:
            continue
        dx = q(margin + rng.uniform(0, span_w - b.width))
        dy = q(margin + rng.uniform(0, span_h - b.height))
        dx, dy = float(round(dx)), float(round(dy))
        part = Part(family, sheet, frame=frame, text_height=text_height)
        for kind, numbers, annotated in b.items:
            part.primitives.append(_to_primitive(kind, numbers, dx, dy))
            part.annotated.append(annotated)
        if program_problems(part.primitives, sheet):
            continue
        for d in b.dims:
            part.dimensions.append(dataclasses.replace(d, p1=_shift(d.p1, dx, dy), p2=_shift(d.p2, dx, dy),
                                                       center=_shift(d.center, dx, dy)))
        part.centre_lines = [(_shift(a, dx, dy), _shift(c, dx, dy)) for a, c in b.centre_lines]
        part.centre_marks = [(q(x + dx), q(y + dy), s) for x, y, s in b.centre_marks]
        part.pitch_circles = [(q(x + dx), q(y + dy), r) for x, y, r in b.pitch_circles]
        part.hatches = [[(kind, [(_shift(p, dx, dy)) for p in data]) if kind == "poly"
                         else (kind, (q(data[0] + dx), q(data[1] + dy), data[2])) for kind, data in loops]
                        for loops in b.hatches]
        _lay_out_linear(part, b.width, b.height, dx, dy)
        _mark_dimensioned(part)
        return part
    raise RuntimeError(f"seed {seed}: no part fitted its sheet in 50 tries")


def _lay_out_linear(part: Part, width: float, height: float, dx: float, dy: float):
    """Puts each linear dimension's line outside the part, on the side its offset asks for, stacked
    shortest nearest; what does not fit in the two rows a side allows goes to the other side or is dropped."""
    th = part.text_height
    box = {"below": dy, "above": dy + height, "left": dx, "right": dx + width}
    rows: dict[str, list[Dimension]] = {side: [] for side in box}
    kept = [d for d in part.dimensions if d.kind != "linear"]
    linear = sorted((d for d in part.dimensions if d.kind == "linear"), key=lambda d: d.value)
    opposite = {"below": "above", "above": "below", "left": "right", "right": "left"}
    for d in linear:
        side = ("above" if d.offset > 0 else "below") if d.direction == 0 else ("right" if d.offset > 0 else "left")
        for choice in (side, opposite[side]):
            if len(rows[choice]) < 2 and all(abs(o.value - d.value) > 1e-6 for o in rows[choice]):
                rows[choice].append(d)
                break
    for side, row in rows.items():
        sign = -1 if side in ("below", "left") else 1
        for rank, d in enumerate(row):
            kept.append(dataclasses.replace(d, at=q(box[side] + sign * (2.0 + 1.8 * rank) * th)))
    part.dimensions = kept


def _mark_dimensioned(part: Part):
    """A rectangle counts as annotated only when both its sides carry a linear dimension."""
    horizontal = {d.value for d in part.dimensions if d.kind == "linear" and d.direction == 0}
    vertical = {d.value for d in part.dimensions if d.kind == "linear" and d.direction == 90}
    for i, primitive in enumerate(part.primitives):
        if isinstance(primitive, Rectangle) and part.annotated[i]:
            part.annotated[i] = primitive.width in horizontal and primitive.height in vertical
