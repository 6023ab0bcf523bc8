"""Primitives and programs: the drawing contract (shared/spec/drawings.md, sections 1-3) in code.

Three views of the same drawing content, converted exactly into one another:

- typed primitives (`Line`, `Rectangle`, `Circle`, `Arc`, `Polyline`), the form code works with;
- JSON objects (`{"type": "circle", "x": 30, "y": 5, "radius": 5}`), the form of dataset labels;
- program text (`circle(x=30, y=5, radius=5)`), the form the model writes and users edit.

Every number is held at the contract's resolution of 0.1 mm (or 0.1 degree), so the round trips
are exact. Program text (formatting and the safe parser) is `contract.program_text`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, ClassVar, Iterable, Sequence, Union

RESOLUTION_DECIMALS = 1
# A number given with more decimals than the contract allows is accepted only when it is this close
# to a 0.1 step (float noise such as 12.300000000000001), never silently rounded otherwise.
_DECIMAL_SLACK = 1e-6
# Coordinates may sit on the sheet's border and float noise may put them a hair outside.
_SHEET_SLACK = 1e-6

MIN_SHEET_SIDE = 50.0
MAX_SHEET_SIDE = 500.0
MAX_ASPECT = 2.0
MAX_PRIMITIVES = 12


class ProgramError(ValueError):
    """A program text, JSON object or value outside the contract; the message says what and where."""


def quantize(value: Any, where: str = "value") -> float:
    """Returns `value` as a float on the 0.1 grid, or raises ProgramError saying why it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProgramError(f"{where}: expected a number, got {value!r}")
    try:
        as_float = float(value)
    except OverflowError:  # an int literal too large for a float, e.g. 1 followed by 400 zeros
        raise ProgramError(f"{where}: {str(value)[:20]}... is too large a number") from None
    if not math.isfinite(as_float):
        raise ProgramError(f"{where}: expected a finite number, got {value!r}")
    rounded = round(as_float, RESOLUTION_DECIMALS)
    if abs(rounded - value) > _DECIMAL_SLACK:
        raise ProgramError(f"{where}: {value!r} has more than one decimal (the resolution is 0.1)")
    return rounded + 0.0  # turns -0.0 into 0.0


def format_number(value: float) -> str:
    """`40.0` -> `40`, `12.5` -> `12.5`: the shortest text of a value on the 0.1 grid."""
    text = f"{value:.{RESOLUTION_DECIMALS}f}"
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def json_number(value: float) -> int | float:
    """An int when the value is whole, so JSON reads `40` rather than `40.0`."""
    return int(value) if float(value).is_integer() else value


@dataclasses.dataclass(frozen=True)
class Sheet:
    """The drawing's sheet in mm; origin bottom-left, y up."""

    width: float
    height: float

    def __post_init__(self):
        object.__setattr__(self, "width", quantize(self.width, "sheet.width"))
        object.__setattr__(self, "height", quantize(self.height, "sheet.height"))
        if self.width <= 0 or self.height <= 0:
            raise ProgramError(f"sheet: width and height must be > 0, got {self.width} x {self.height}")

    @property
    def longer_side(self) -> float:
        return max(self.width, self.height)

    def in_scope_problems(self) -> list[str]:
        """Reasons this sheet lies outside the contract's scope (it is still a valid sheet)."""
        problems = []
        for name, side in (("width", self.width), ("height", self.height)):
            if not MIN_SHEET_SIDE <= side <= MAX_SHEET_SIDE:
                problems.append(f"sheet {name} {format_number(side)} mm is outside 50..500 mm")
        if max(self.width, self.height) > MAX_ASPECT * min(self.width, self.height):
            problems.append("sheet aspect ratio is beyond 2:1")
        return problems

    def to_json(self) -> dict:
        return {"width": json_number(self.width), "height": json_number(self.height)}

    @classmethod
    def from_json(cls, obj: Any) -> "Sheet":
        if not isinstance(obj, dict):
            raise ProgramError(f"sheet: expected an object with width and height, got {obj!r}")
        missing = [k for k in ("width", "height") if k not in obj]
        if missing:
            raise ProgramError(f"sheet: missing field {', '.join(missing)}")
        return cls(obj["width"], obj["height"])


# ----------------------------------------------------------------------------------------------
# Primitives
# ----------------------------------------------------------------------------------------------


def _first_off_sheet(points, sheet: Sheet, slack: float) -> tuple[float, float] | None:
    for x, y in points:
        if not (-slack <= x <= sheet.width + slack and -slack <= y <= sheet.height + slack):
            return x, y
    return None


@dataclasses.dataclass(frozen=True)
class _Primitive:
    """Shared behaviour; subclasses declare their numeric fields in contract order."""

    TYPE: ClassVar[str] = ""
    # Fields whose value a drafter writes on the drawing (scored by size exactness).
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ()
    # Contract 1.1: a label may say a primitive's sizes are not annotated on the drawing. Not a field
    # (it is no part of the geometry, the program text or equality): set per instance by `unannotated`.
    annotated: ClassVar[bool] = True

    def __post_init__(self):
        for field in self.number_fields():
            object.__setattr__(self, field, quantize(getattr(self, field), f"{self.TYPE}.{field}"))

    @classmethod
    def number_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def to_json(self) -> dict:
        out: dict[str, Any] = {"type": self.TYPE}
        for field in self.number_fields():
            out[field] = json_number(getattr(self, field))
        if not self.annotated:
            out["annotated"] = False
        return out

    def to_program(self) -> str:
        args = ", ".join(f"{f}={format_number(getattr(self, f))}" for f in self.number_fields())
        return f"{self.TYPE}({args})"

    def problems(self, sheet: Sheet | None = None) -> list[str]:
        """Reasons this primitive breaks the contract (empty when valid)."""
        problems = [f"{self.TYPE}.{f} must be > 0" for f in self.SIZE_FIELDS if getattr(self, f) <= 0]
        if sheet is not None:
            point = self.point_off_sheet(sheet)
            if point is not None:
                problems.append(
                    f"{self.TYPE}: point ({format_number(point[0])}, {format_number(point[1])}) lies outside the "
                    f"{format_number(sheet.width)} x {format_number(sheet.height)} sheet")
        return problems

    def point_off_sheet(self, sheet: Sheet) -> tuple[float, float] | None:
        """The first point that must lie on the sheet and does not, or None."""
        return _first_off_sheet(self.key_points(), sheet, _SHEET_SLACK)

    def key_points(self) -> list[tuple[float, float]]:
        """The positions a program writes (ends, corners, centres, vertices)."""
        raise NotImplementedError



@dataclasses.dataclass(frozen=True)
class Line(_Primitive):
    TYPE: ClassVar[str] = "line"
    x1: float
    y1: float
    x2: float
    y2: float

    def key_points(self):
        return [(self.x1, self.y1), (self.x2, self.y2)]

    def problems(self, sheet=None):
        problems = super().problems(sheet)
        if (self.x1, self.y1) == (self.x2, self.y2):
            problems.append("line: the two end points are the same point")
        return problems


@dataclasses.dataclass(frozen=True)
class Rectangle(_Primitive):
    TYPE: ClassVar[str] = "rectangle"
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("width", "height")
    x: float
    y: float
    width: float
    height: float

    def key_points(self):
        return [(self.x, self.y), (self.x + self.width, self.y + self.height)]


@dataclasses.dataclass(frozen=True)
class Circle(_Primitive):
    TYPE: ClassVar[str] = "circle"
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("radius",)
    x: float
    y: float
    radius: float

    def key_points(self):
        return [(self.x, self.y)]


@dataclasses.dataclass(frozen=True)
class Arc(_Primitive):
    TYPE: ClassVar[str] = "arc"
    SIZE_FIELDS: ClassVar[tuple[str, ...]] = ("radius",)
    x: float
    y: float
    radius: float
    start_angle: float
    end_angle: float

    def key_points(self):
        return [(self.x, self.y)]

    def arc_points(self) -> list[tuple[float, float]]:
        """The arc's two ends and every extreme (0, 90, 180, 270 degrees) it sweeps past."""
        sweep = (self.end_angle - self.start_angle) % 360
        angles = [self.start_angle, self.end_angle]
        angles += [a for a in (0, 90, 180, 270) if 0 < (a - self.start_angle) % 360 < sweep]
        return [(self.x + self.radius * math.cos(math.radians(a)), self.y + self.radius * math.sin(math.radians(a)))
                for a in angles]

    def point_off_sheet(self, sheet):
        """An arc is on the sheet when its centre is, or (contract 1.1: the centre may lie off it) when
        the arc itself is. Its points come from a centre and radius written to 0.1 mm, so an arc drawn to
        the sheet's edge may land half a step over it: that much is allowed."""
        centre = _first_off_sheet(self.key_points(), sheet, _SHEET_SLACK)
        if centre is None:
            return None
        return _first_off_sheet(self.arc_points(), sheet, 0.05 + _SHEET_SLACK)

    def problems(self, sheet=None):
        problems = super().problems(sheet)
        for name in ("start_angle", "end_angle"):
            if not 0 <= getattr(self, name) < 360:
                problems.append(f"arc.{name} must be in [0, 360), got {format_number(getattr(self, name))}")
        if self.start_angle == self.end_angle:
            problems.append("arc: start_angle equals end_angle")
        return problems


@dataclasses.dataclass(frozen=True)
class Polyline(_Primitive):
    TYPE: ClassVar[str] = "polyline"
    points: tuple[tuple[float, float], ...]
    closed: bool = False

    def __post_init__(self):
        if isinstance(self.points, (str, bytes)) or not isinstance(self.points, Iterable):
            raise ProgramError(f"polyline.points: expected a list of [x, y] pairs, got {self.points!r}")
        points = []
        for i, point in enumerate(self.points):
            if isinstance(point, (str, bytes)) or not isinstance(point, Sequence) or len(point) != 2:
                raise ProgramError(f"polyline.points[{i}]: expected an [x, y] pair, got {point!r}")
            points.append((quantize(point[0], f"polyline.points[{i}][0]"),
                           quantize(point[1], f"polyline.points[{i}][1]")))
        if not isinstance(self.closed, bool):
            raise ProgramError(f"polyline.closed: expected true or false, got {self.closed!r}")
        object.__setattr__(self, "points", tuple(points))

    @classmethod
    def number_fields(cls):
        return ()

    def to_json(self):
        out = {"type": self.TYPE, "points": [[json_number(x), json_number(y)] for x, y in self.points],
               "closed": self.closed}
        if not self.annotated:
            out["annotated"] = False
        return out

    def to_program(self):
        points = ", ".join(f"({format_number(x)}, {format_number(y)})" for x, y in self.points)
        return f"polyline(points=[{points}], closed={self.closed})"

    def key_points(self):
        return list(self.points)

    def path(self) -> list[tuple[float, float]]:
        """The points in drawing order, the first again at the end of a closed one."""
        return list(self.points) + (list(self.points[:1]) if self.closed else [])

    def problems(self, sheet=None):
        problems = super().problems(sheet)
        if len(self.points) < 2:
            problems.append(f"polyline needs at least 2 points, got {len(self.points)}")
        elif self.closed and len(self.points) < 3:
            problems.append("a closed polyline needs at least 3 points")
        return problems


Primitive = Union[Line, Rectangle, Circle, Arc, Polyline]
PRIMITIVE_TYPES: dict[str, type] = {cls.TYPE: cls for cls in (Line, Rectangle, Circle, Arc, Polyline)}
TYPE_NAMES: tuple[str, ...] = tuple(PRIMITIVE_TYPES)


def field_names(type_name: str) -> tuple[str, ...]:
    """Fields of a primitive type in contract order (polyline: points, closed)."""
    cls = PRIMITIVE_TYPES[type_name]
    return tuple(f.name for f in dataclasses.fields(cls))


def unannotated(primitive: Primitive) -> Primitive:
    """The same primitive marked as carrying no size annotation on its drawing (contract 1.1): its sizes
    count for matching but not for size exactness."""
    object.__setattr__(primitive, "annotated", False)
    return primitive


def primitive_problems(primitive: Primitive, sheet: Sheet | None = None) -> list[str]:
    return primitive.problems(sheet)


def program_problems(primitives: Sequence[Primitive], sheet: Sheet | None = None) -> list[str]:
    """Every reason the list breaks the contract, each prefixed with its primitive's index."""
    problems = []
    for i, primitive in enumerate(primitives):
        problems.extend(f"primitive {i + 1}: {p}" for p in primitive.problems(sheet))
    return problems


# ----------------------------------------------------------------------------------------------
# JSON
# ----------------------------------------------------------------------------------------------


def loads_json(text: str, one_line: bool = False) -> Any:
    """`json.loads`, its failures as a ProgramError that says where: line and column, or (`one_line`: a
    label line, whose line number its caller knows) the column only."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if one_line:
            raise ProgramError(f"bad JSON at column {err.colno}: {err.msg}") from None
        raise ProgramError(f"line {err.lineno}, column {err.colno}: bad JSON: {err.msg}") from None
    except RecursionError:
        raise ProgramError("bad JSON: nested too deeply") from None


def primitive_from_json(obj: Any, where: str = "primitive") -> Primitive:
    """One JSON object -> a typed primitive; ProgramError names the missing or unknown field."""
    if not isinstance(obj, dict):
        raise ProgramError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    type_name = obj.get("type")
    if type_name is None:
        raise ProgramError(f"{where}: missing field 'type'")
    # A list or object as the type is unhashable: it must not reach the dict lookup as a TypeError.
    cls = PRIMITIVE_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ProgramError(f"{where}: unknown type {type_name!r} (expected one of {', '.join(TYPE_NAMES)})")
    names = field_names(type_name)
    missing = [n for n in names if n not in obj and not (cls is Polyline and n == "closed")]
    if missing:
        raise ProgramError(f"{where}: {type_name} is missing field {', '.join(repr(m) for m in missing)}")
    unknown = sorted(set(obj) - set(names) - {"type", "annotated"})
    if unknown:
        raise ProgramError(f"{where}: {type_name} has unknown field {', '.join(repr(u) for u in unknown)}")
    annotated = obj.get("annotated", True)
    if not isinstance(annotated, bool):
        raise ProgramError(f"{where}: 'annotated' must be true or false, got {annotated!r}")
    try:
        primitive = cls(**{n: obj[n] for n in names if n in obj})
    except ProgramError as err:
        raise ProgramError(f"{where}: {err}") from None
    return primitive if annotated else unannotated(primitive)


def primitives_from_json(objs: Any, where: str = "primitives") -> list[Primitive]:
    if not isinstance(objs, list):
        raise ProgramError(f"{where}: expected a list, got {type(objs).__name__}")
    return [primitive_from_json(o, f"{where}[{i}]") for i, o in enumerate(objs)]


def primitives_to_json(primitives: Iterable[Primitive]) -> list[dict]:
    return [p.to_json() for p in primitives]
