"""Reading a DXF file into the contract's primitives: what `cad2program import-dxf` keeps and skips.

`read_dxf(path)` opens one file (ezdxf; its recover mode when the file is damaged), walks the
modelspace with every block reference exploded (nested ones too), and returns a `DxfContent`:

- `shapes`: the geometry as contract primitives would hold it, still in the file's units:
  LINE, CIRCLE, ARC, LWPOLYLINE and 2D POLYLINE. A polyline's bulged segments become arcs of their
  own and each run of straight segments a polyline (or a line when it is one segment): the contract
  has no curved polyline, and splitting keeps every bit of the outline instead of dropping the file.
  A closed, axis-aligned outline of four sides (one polyline, or four LINE entities meeting at their
  ends) becomes a rectangle, and arcs of one circle that meet end to start become one arc (a circle
  when they go all the way round), as a reader would write them.
- `inks`: entities drawn with a centre-line, hidden or any other non-continuous linetype (the
  entity's own, its layer's, or for BYBLOCK the block reference's): drawn, but not primitives
  (contract 1.1, section 2a).
- `dimensions`: DIMENSION entities (linear, aligned, radius, diameter) with their measured values.
- `kept` / `skipped`: counts by kind and reason (splines, text, hatches, 3D entities, ...), for the
  per-file report.

Problems with the file itself (a DWG file, a corrupt or empty file, nothing usable) raise `DxfError`
with a one-line message; problems with single entities (zero length, absurd coordinates) only skip them.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from cad2program.dxf.shapes import (Shape, SkipEntity, arc_polyline, check_coordinates, merge_arcs,
                                    merge_line_rectangles, polyline_shapes)
from cad2program.errors import UserError

# Coordinates beyond 1e7 mm (10 km) are a broken file, not a drawing.
ABSURD_MM = 1e7
# Points closer than this (in mm) are one point: end points meeting, zero-length entities.
SAME_POINT_MM = 1e-4
# Dimension types (the low bits of the DIMENSION's dimtype) whose measured values we keep.
_DIMTYPE_NAMES = {0: "linear", 1: "linear", 3: "diameter", 4: "radius"}
# Why an entity type is not geometry, for the per-file report.
_SKIP_REASONS = {
    "SPLINE": "spline (no contract primitive)", "ELLIPSE": "ellipse (no contract primitive)",
    "TEXT": "text", "MTEXT": "text", "ATTRIB": "text", "ATTDEF": "text",
    "HATCH": "hatch or fill", "SOLID": "hatch or fill", "TRACE": "hatch or fill", "WIPEOUT": "hatch or fill",
    "MPOLYGON": "hatch or fill",
    "3DFACE": "3D entity", "3DSOLID": "3D entity", "BODY": "3D entity", "REGION": "3D entity",
    "MESH": "3D entity", "SURFACE": "3D entity", "EXTRUDEDSURFACE": "3D entity", "LOFTEDSURFACE": "3D entity",
    "REVOLVEDSURFACE": "3D entity", "SWEPTSURFACE": "3D entity", "PLANESURFACE": "3D entity",
    "POINT": "point", "LEADER": "leader", "MULTILEADER": "leader", "MLEADER": "leader",
    "IMAGE": "raster image", "VIEWPORT": "viewport", "XLINE": "infinite line", "RAY": "infinite line",
    "ARC_DIMENSION": "arc-length dimension", "TOLERANCE": "tolerance frame", "MLINE": "multiline",
}
_CENTRE_LINETYPES = re.compile(r"CENT|DASHDOT|DASH_DOT|CHAIN|AXIS|PHANTOM|DIVIDE|ISO0?(4|5|8|9|10|11|12|13|14)W")


class DxfError(UserError):
    """A file that cannot be imported at all; the message is one line saying what and how to fix it."""


@dataclasses.dataclass
class Ink:
    """A stroke that is drawn but is not geometry (centre line, hidden line), in file units."""

    points: np.ndarray
    closed: bool
    pattern: str  # "centre" (long dash, dot) or "hidden" (dashes)

    def scaled(self, scale: float, dx: float, dy: float) -> "Ink":
        return Ink(self.points * scale + np.array([dx, dy]), self.closed, self.pattern)


@dataclasses.dataclass
class Dimension:
    """A DIMENSION entity's measurement and where it measures, in file units.

    linear: `p1`, `p2` the extension lines' origins, `direction` what is measured along, `location`
    a point on the dimension line. radius / diameter: `p1` the centre, `p2` a point on the curve.
    """

    kind: str
    value: float
    p1: np.ndarray
    p2: np.ndarray
    location: np.ndarray
    direction: np.ndarray

    def scaled(self, scale: float, dx: float, dy: float) -> "Dimension":
        shift = np.array([dx, dy])
        return Dimension(self.kind, self.value * scale, self.p1 * scale + shift, self.p2 * scale + shift,
                         self.location * scale + shift, self.direction)


@dataclasses.dataclass
class DxfContent:
    path: Path
    unit_mm: float  # millimetres per drawing unit
    shapes: list[Shape]
    inks: list[Ink]
    dimensions: list[Dimension]
    kept: Counter
    skipped: Counter
    notes: list[str]  # e.g. "recovered from a damaged file: 3 errors fixed"


# ----------------------------------------------------------------------------------------------
# Opening a file
# ----------------------------------------------------------------------------------------------


_DWG_ADVICE = ("DWG files are not read; convert it to DXF first, e.g. with the ODA File Converter "
               "(free, opendesign.com) or LibreCAD (open it, then File > Save As > DXF)")


def open_document(path: Path):
    """(ezdxf document, notes); DxfError with one line for a DWG, unreadable or corrupt file."""
    import ezdxf
    from ezdxf import recover

    if not path.exists():
        raise DxfError(f"{path}: file not found")
    if path.is_dir():
        raise DxfError(f"{path}: is a folder (give DXF files, or a folder's *.dxf through the shell)")
    try:
        with open(path, "rb") as handle:
            head = handle.read(32)
    except OSError as err:
        raise DxfError(f"{path}: cannot read: {err.strerror or err}") from None
    if not head:
        raise DxfError(f"{path}: the file is empty")
    if re.match(rb"AC1\d{3}", head) or path.suffix.lower() == ".dwg":
        raise DxfError(f"{path}: a DWG file. {_DWG_ADVICE}")
    notes = []
    try:
        doc = ezdxf.readfile(path)  # text and binary DXF, every version ezdxf knows
        return doc, notes
    except (ezdxf.DXFStructureError, ezdxf.DXFVersionError, UnicodeDecodeError, ValueError) as err:
        first_error = err
    except Exception as err:  # ezdxf raises several types on broken input; recover mode below decides
        first_error = err
    try:
        doc, auditor = recover.readfile(path)
    except ezdxf.DXFStructureError as err:
        raise DxfError(f"{path}: not a readable DXF file, even in recover mode ({_one_line(err)})") from None
    except Exception as err:
        raise DxfError(f"{path}: not a readable DXF file ({_one_line(first_error)}; recover mode: "
                       f"{_one_line(err)})") from None
    fixed = len(auditor.fixes) + len(auditor.errors)
    notes.append(f"damaged file read in recover mode ({_one_line(first_error)}; {fixed} problems fixed)")
    return doc, notes


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:160]


def unit_mm(doc) -> float:
    """Millimetres per drawing unit from $INSUNITS; unitless drawings are taken as millimetres."""
    from ezdxf import units

    code = doc.header.get("$INSUNITS", 0) or 0
    if code in (0, 4):
        return 1.0
    try:
        return float(units.conversion_factor(code, 4))
    except Exception:
        return 1.0


# ----------------------------------------------------------------------------------------------
# Walking the modelspace
# ----------------------------------------------------------------------------------------------


def read_dxf(path: str | Path) -> DxfContent:
    path = Path(path)
    doc, notes = open_document(path)
    content = DxfContent(path, unit_mm(doc), [], [], [], Counter(), Counter(), notes)
    modelspace = doc.modelspace()
    if len(modelspace) == 0:
        raise DxfError(f"{path}: the modelspace is empty (no entity to import)")
    limit = ABSURD_MM / content.unit_mm
    for entity, linetype in _flatten(doc, modelspace, content.skipped):
        try:
            _take(entity, linetype, content, limit)
        except SkipEntity as skip:
            content.skipped[str(skip)] += 1
        except Exception as err:  # one odd entity must not stop the file
            content.skipped[f"{entity.dxftype()} that could not be read ({type(err).__name__})"] += 1
    content.shapes = merge_arcs(merge_line_rectangles(content.shapes))
    content.kept = Counter(s.kind for s in content.shapes)
    if content.inks:
        content.kept["centre or hidden line (drawn, not a primitive)"] = len(content.inks)
    if content.dimensions:
        content.kept["dimension"] = len(content.dimensions)
    return content


def _flatten(doc, entities, skipped: Counter, depth: int = 0, block_linetype: str = "CONTINUOUS",
             block_layer: str | None = None):
    """(entity, resolved linetype) for every entity, block references exploded recursively."""
    for entity in entities:
        layer_name = entity.dxf.get("layer", "0")
        if layer_name == "0" and block_layer:  # entities on layer 0 in a block take the reference's layer
            layer_name = block_layer
        layer = doc.layers.get(layer_name) if doc.layers.has_entry(layer_name) else None
        if layer is not None and (layer.is_off() or layer.is_frozen()):
            skipped["on a layer that is off or frozen"] += 1
            continue
        linetype = _linetype(entity, layer, block_linetype)
        if entity.dxftype() == "INSERT":
            if depth > 16:
                skipped["block reference nested over 16 deep"] += 1
                continue
            if len(getattr(entity, "attribs", ())):
                skipped["text"] += len(entity.attribs)
            try:
                children = list(entity.virtual_entities())
            except Exception as err:
                skipped[f"block reference that cannot be exploded ({type(err).__name__})"] += 1
                continue
            yield from _flatten(doc, children, skipped, depth + 1, linetype, layer_name)
        else:
            yield entity, linetype


def _linetype(entity, layer, block_linetype: str) -> str:
    name = str(entity.dxf.get("linetype", "BYLAYER")).upper()
    if name == "BYBLOCK":
        return block_linetype
    if name == "BYLAYER":
        return str(layer.dxf.get("linetype", "CONTINUOUS")).upper() if layer is not None else "CONTINUOUS"
    return name


def _ink_pattern(linetype: str) -> str | None:
    """None for continuous lines (geometry); otherwise how the non-geometry line is dashed."""
    if linetype in ("", "CONTINUOUS", "BYLAYER", "BYBLOCK"):
        return None
    return "centre" if _CENTRE_LINETYPES.search(linetype) else "hidden"


def _mirror_x(extrusion) -> bool:
    """True for an OCS seen from below (extrusion -Z: x mirrored); SkipEntity for one not parallel to Z."""
    if extrusion is None:
        return False
    ex, ey, ez = extrusion
    if abs(ex) > 1e-9 or abs(ey) > 1e-9:
        raise SkipEntity("3D entity (not in the drawing plane)")
    return ez < 0


def _take(entity, linetype: str, content: DxfContent, limit: float) -> None:
    kind = entity.dxftype()
    pattern = _ink_pattern(linetype)
    same = SAME_POINT_MM / content.unit_mm
    if kind == "DIMENSION":
        content.dimensions.append(_dimension(entity, limit))
        return
    if kind == "LINE":
        a, b = entity.dxf.start, entity.dxf.end
        if abs(a.z - b.z) > same:
            raise SkipEntity("3D entity (not in the drawing plane)")
        check_coordinates((a.x, a.y, b.x, b.y), limit)
        if math.hypot(b.x - a.x, b.y - a.y) < same:
            raise SkipEntity("zero-length entity")
        shapes = [Shape("line", (a.x, a.y, b.x, b.y))]
    elif kind in ("CIRCLE", "ARC"):
        mirror = _mirror_x(entity.dxf.get("extrusion"))
        centre, radius = entity.dxf.center, float(entity.dxf.radius)
        cx = -centre.x if mirror else centre.x
        check_coordinates((cx, centre.y, radius), limit)
        if radius < same:
            raise SkipEntity("zero-length entity")
        if kind == "CIRCLE":
            shapes = [Shape("circle", (cx, centre.y, radius))]
        else:
            start, end = float(entity.dxf.start_angle) % 360, float(entity.dxf.end_angle) % 360
            if mirror:
                start, end = (180.0 - end) % 360, (180.0 - start) % 360
            if abs(start - end) < 1e-9:
                raise SkipEntity("zero-length entity")
            shapes = [Shape("arc", (cx, centre.y, radius, start, end))]
    elif kind == "LWPOLYLINE":
        mirror = _mirror_x(entity.dxf.get("extrusion"))
        points = [(-x if mirror else x, y, -b if mirror else b) for x, y, b in entity.get_points("xyb")]
        shapes = polyline_shapes(points, bool(entity.closed), same, limit)
    elif kind == "POLYLINE":
        if entity.is_polygon_mesh or entity.is_poly_face_mesh:
            raise SkipEntity("3D entity (mesh)")
        vertices = list(entity.vertices)
        if entity.is_3d_polyline:
            zs = [v.dxf.location.z for v in vertices]
            if zs and max(zs) - min(zs) > same:
                raise SkipEntity("3D entity (3D polyline)")
            mirror = False
        else:
            mirror = _mirror_x(entity.dxf.get("extrusion"))
        points = [(-v.dxf.location.x if mirror else v.dxf.location.x, v.dxf.location.y,
                   -(v.dxf.get("bulge", 0.0) or 0.0) if mirror else (v.dxf.get("bulge", 0.0) or 0.0))
                  for v in vertices]
        shapes = polyline_shapes(points, bool(entity.is_closed), same, limit)
    else:
        raise SkipEntity(_SKIP_REASONS.get(kind, f"unsupported entity {kind}"))
    if pattern is None:
        content.shapes.extend(shapes)
    else:
        content.inks.extend(Ink(_shape_points(s), s.kind in ("circle", "rectangle") or s.closed, pattern)
                            for s in shapes)


def _shape_points(shape: Shape) -> np.ndarray:
    if shape.kind == "line":
        return np.array(shape.values, float).reshape(2, 2)
    if shape.kind == "circle":
        return arc_polyline(*shape.values, 0.0, 360.0, count=96)[:-1]
    if shape.kind == "arc":
        return arc_polyline(*shape.values)
    if shape.kind == "rectangle":
        x, y, w, h = shape.values
        return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], float)
    return shape.points


def _dimension(entity, limit: float) -> Dimension:
    dimtype = int(entity.dxf.get("dimtype", 0)) & 7
    kind = _DIMTYPE_NAMES.get(dimtype)
    if kind is None:
        raise SkipEntity("angular or ordinate dimension (no size of a primitive)")
    value = entity.get_measurement()
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SkipEntity("dimension without a measurement")
    point = lambda name: np.array(entity.dxf.get(name, (0, 0, 0)), float)[:2]  # noqa: E731
    if kind == "linear":
        p1, p2, location = point("defpoint2"), point("defpoint3"), point("defpoint")
        if dimtype == 0:  # rotated: measured along the dimension's angle
            angle = math.radians(float(entity.dxf.get("angle", 0.0)))
            direction = np.array([math.cos(angle), math.sin(angle)])
        else:  # aligned: along the two origins
            direction = (p2 - p1) / max(float(np.hypot(*(p2 - p1))), 1e-12)
    elif kind == "diameter":  # defpoint and defpoint4: the two ends of the diameter
        a, b = point("defpoint"), point("defpoint4")
        p1, p2, location = (a + b) / 2, b, b
        direction = np.array([1.0, 0.0])
    else:  # radius: defpoint the centre, defpoint4 on the curve
        p1, p2 = point("defpoint"), point("defpoint4")
        location, direction = p2, np.array([1.0, 0.0])
    check_coordinates(tuple(p1) + tuple(p2) + tuple(location) + (value,), limit)
    return Dimension(kind, float(value), p1, p2, location, direction)
