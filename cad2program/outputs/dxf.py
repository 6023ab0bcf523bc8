"""Programs as DXF files: native entities in millimetres, with real (associative) dimension entities.

Layers: `GEOMETRY` (the primitives), `DIMENSIONS` (rectangle width/height, circle diameters, arc radii),
`SHEET` (the sheet border). Rectangles are closed 4-point LWPOLYLINEs, the way CAD programs store
them; an XDATA tag says which closed polylines were rectangles so a file reads back exactly.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Iterable, TextIO, Union

import ezdxf
from ezdxf.document import Drawing

from cad2program.contract.program import (Arc, Circle, Line, Polyline, Primitive, ProgramError, Rectangle, Sheet)
from cad2program.outputs.scene import Placement, plan_dimensions, text_height

GEOMETRY_LAYER = "GEOMETRY"
DIMENSIONS_LAYER = "DIMENSIONS"
SHEET_LAYER = "SHEET"
# XDATA application name: tags each LWPOLYLINE with the contract type it came from.
APP_ID = "CAD2PROGRAM"
LINEAR_STYLE = "CAD2PROGRAM"
RADIAL_STYLE = "CAD2PROGRAM_RADIAL"
INSUNITS_MM = 4

PathOrStream = Union[str, os.PathLike, TextIO, BinaryIO]


def _add_dimension_styles(doc: Drawing, sheet: Sheet) -> None:
    """Two dimension styles scaled to the sheet: digits 3% of its longer side, 0.1 mm resolution."""
    t = text_height(sheet)
    common = {
        "dimtxt": t, "dimasz": 0.8 * t, "dimgap": 0.4 * t, "dimexe": 0.5 * t, "dimexo": 0.4 * t,
        "dimdec": 1, "dimzin": 8,  # one decimal, trailing zeros suppressed: 40, 12.5
        "dimdsep": ord("."), "dimlfac": 1.0, "dimtad": 1, "dimtih": 0, "dimtoh": 0,
        "dimblk": "", "dimclrd": 0, "dimclre": 0, "dimclrt": 0,  # closed filled arrows, colour by layer
    }
    linear = doc.dimstyles.new(LINEAR_STYLE)
    for name, value in common.items():
        linear.set_dxf_attrib(name, value)
    radial = doc.dimstyles.new(RADIAL_STYLE)
    # Radial text outside the curve and level (dimtoh), like the PNG/SVG leaders' shoulders.
    for name, value in {**common, "dimtmove": 0, "dimtofl": 1, "dimtoh": 1, "dimtih": 1,
                        "dimcen": 0.35 * t}.items():
        radial.set_dxf_attrib(name, value)


def _rectangle_points(rect: Rectangle) -> list[tuple[float, float]]:
    x, y, w, h = rect.x, rect.y, rect.width, rect.height
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


def _add_primitive(msp, primitive: Primitive) -> None:
    geometry = {"layer": GEOMETRY_LAYER}
    if isinstance(primitive, Line):
        msp.add_line((primitive.x1, primitive.y1), (primitive.x2, primitive.y2), dxfattribs=geometry)
    elif isinstance(primitive, Circle):
        msp.add_circle((primitive.x, primitive.y), primitive.radius, dxfattribs=geometry)
    elif isinstance(primitive, Arc):
        # DXF arcs, like the contract's, run counter-clockwise from start to end in degrees.
        msp.add_arc((primitive.x, primitive.y), primitive.radius, primitive.start_angle, primitive.end_angle,
                    dxfattribs=geometry)
    elif isinstance(primitive, Rectangle):
        entity = msp.add_lwpolyline(_rectangle_points(primitive), close=True, dxfattribs=geometry)
        entity.set_xdata(APP_ID, [(1000, "rectangle")])
    else:
        entity = msp.add_lwpolyline(list(primitive.points), close=primitive.closed, dxfattribs=geometry)
        entity.set_xdata(APP_ID, [(1000, "polyline")])


def _add_dimensions(msp, primitive: Primitive, placement: Placement) -> None:
    """The primitive's size as a DIMENSION entity, placed where the PNG/SVG drawing puts it."""
    attribs = {"layer": DIMENSIONS_LAYER}
    if isinstance(primitive, Rectangle):
        x0, y0 = primitive.x, primitive.y
        x1, y1 = x0 + primitive.width, y0 + primitive.height
        msp.add_linear_dim(base=(x0, placement.width_line_y), p1=(x0, y0), p2=(x1, y0), angle=0,
                           dimstyle=LINEAR_STYLE, dxfattribs=attribs).render()
        msp.add_linear_dim(base=(placement.height_line_x, y0), p1=(x1, y0), p2=(x1, y1), angle=90,
                           dimstyle=LINEAR_STYLE, dxfattribs=attribs).render()
    elif isinstance(primitive, Circle):
        # ezdxf writes a diameter's text at the end opposite `angle`: turn it to the drawing's side.
        msp.add_diameter_dim((primitive.x, primitive.y), radius=primitive.radius,
                             angle=placement.leader_degrees + 180,
                             dimstyle=RADIAL_STYLE, dxfattribs=attribs).render()
    elif isinstance(primitive, Arc):
        msp.add_radius_dim((primitive.x, primitive.y), radius=primitive.radius,
                           angle=placement.leader_degrees, dimstyle=RADIAL_STYLE, dxfattribs=attribs).render()


def build_dxf(primitives: Iterable[Primitive], sheet: Sheet, dimensions: bool = True) -> Drawing:
    """The ezdxf document of a program (for callers who want to add to it before saving)."""
    doc = ezdxf.new("R2010", setup=True)
    doc.units = ezdxf.units.MM
    doc.header["$INSUNITS"] = INSUNITS_MM
    doc.header["$MEASUREMENT"] = 1  # metric
    doc.header["$EXTMIN"] = (0, 0, 0)
    doc.header["$EXTMAX"] = (sheet.width, sheet.height, 0)
    doc.appids.add(APP_ID)
    doc.layers.add(GEOMETRY_LAYER, color=7, lineweight=50)   # white/black, 0.5 mm
    doc.layers.add(DIMENSIONS_LAYER, color=7, lineweight=25)
    doc.layers.add(SHEET_LAYER, color=8, lineweight=13)       # grey, thin
    _add_dimension_styles(doc, sheet)
    msp = doc.modelspace()
    msp.add_lwpolyline([(0, 0), (sheet.width, 0), (sheet.width, sheet.height), (0, sheet.height)],
                       close=True, dxfattribs={"layer": SHEET_LAYER})
    primitives = list(primitives)
    for primitive in primitives:
        _add_primitive(msp, primitive)
    if dimensions:
        for primitive, placement in zip(primitives, plan_dimensions(primitives, sheet)):
            if placement is not None:
                _add_dimensions(msp, primitive, placement)
    return doc


def to_dxf(primitives: Iterable[Primitive], sheet: Sheet, path_or_stream: PathOrStream,
           dimensions: bool = True) -> None:
    """Writes the program as an ASCII DXF (R2010, mm) to a file path, a text stream or a binary stream."""
    doc = build_dxf(primitives, sheet, dimensions)
    if isinstance(path_or_stream, (str, os.PathLike)):
        doc.saveas(path_or_stream)
    elif isinstance(path_or_stream, io.TextIOBase):
        doc.write(path_or_stream)
    else:  # binary stream: encode the ASCII DXF the way ezdxf does for files
        text = io.StringIO()
        doc.write(text)
        path_or_stream.write(doc.encode(text.getvalue()))


def dxf_bytes(primitives: Iterable[Primitive], sheet: Sheet, dimensions: bool = True) -> bytes:
    """The DXF file's bytes (for web pages and other callers that hold files in memory)."""
    stream = io.BytesIO()
    to_dxf(primitives, sheet, stream, dimensions)
    return stream.getvalue()


def _read_document(path_or_stream: PathOrStream) -> Drawing:
    if isinstance(path_or_stream, (str, os.PathLike)):
        try:
            return ezdxf.readfile(path_or_stream)
        except FileNotFoundError:
            raise
        except Exception as err:  # ezdxf says "not a DXF file" as an OSError; a broken one as ValueError and more
            raise ProgramError(f"{os.fspath(path_or_stream)}: not a readable DXF file: {err}") from None
    data = path_or_stream.read()
    if isinstance(data, bytes):
        data = data.decode("utf-8", errors="replace")
    try:
        return ezdxf.read(io.StringIO(data))
    except Exception as err:  # as above: a damaged file fails in many ways inside ezdxf
        raise ProgramError(f"not a readable DXF stream: {err}") from None


def _mm(value: float) -> float:
    """A coordinate read from a DXF, on the contract's 0.1 mm grid."""
    return round(float(value), 1) + 0.0


def _angle(value: float) -> float:
    return _mm(value % 360.0) % 360.0


def _polyline_to_primitive(entity) -> Primitive:
    points = [(_mm(x), _mm(y)) for x, y, *_ in entity.get_points("xyb")]
    if any(abs(b) > 1e-9 for *_, b in entity.get_points("xyb")):
        raise ProgramError(f"LWPOLYLINE #{entity.dxf.handle}: curved segments (bulges) have no primitive "
                           f"in the contract")
    closed = bool(entity.closed)
    tag = None
    if entity.has_xdata(APP_ID):
        tag = next((value for code, value in entity.get_xdata(APP_ID) if code == 1000), None)
    looks_rectangular = (closed and len(points) == 4 and len({x for x, _ in points}) == 2
                         and len({y for _, y in points}) == 2)
    # Our own files say what the polyline was; other CAD programs draw rectangles as this shape too.
    if tag == "rectangle" or (tag is None and looks_rectangular):
        xs, ys = [x for x, _ in points], [y for _, y in points]
        return Rectangle(min(xs), min(ys), _mm(max(xs) - min(xs)), _mm(max(ys) - min(ys)))
    return Polyline(tuple(points), closed)


def read_dxf_primitives(path_or_stream: PathOrStream, layer: str = GEOMETRY_LAYER) -> list[Primitive]:
    """The primitives on a DXF's geometry layer, in file order, at the contract's 0.1 mm resolution.

    Reads LINE, CIRCLE, ARC and straight LWPOLYLINE entities; any other entity on the layer raises
    ProgramError naming it, since silently dropping geometry would give a wrong program.
    """
    return _primitives_of(_read_document(path_or_stream), layer)


def read_dxf(path_or_stream: PathOrStream, layer: str = GEOMETRY_LAYER) -> tuple[list[Primitive], Sheet | None]:
    """The primitives (as `read_dxf_primitives`) and the sheet drawn on the SHEET layer, if any."""
    doc = _read_document(path_or_stream)
    try:
        return _primitives_of(doc, layer), _sheet_of(doc)
    except ProgramError:
        raise
    except (ValueError, TypeError, ArithmeticError, AttributeError, IndexError, KeyError) as err:
        # A file that parses but holds damaged entities (a missing or non-numeric value)
        raise ProgramError(f"a damaged entity: {type(err).__name__}: {err}") from None


def _sheet_of(doc: Drawing) -> Sheet | None:
    """The sheet border written by `to_dxf`: a closed LWPOLYLINE on SHEET from (0, 0)."""
    for entity in doc.modelspace().query(f'LWPOLYLINE[layer=="{SHEET_LAYER}"]'):
        points = [(_mm(x), _mm(y)) for x, y in entity.get_points("xy")]
        xs, ys = [x for x, _ in points], [y for _, y in points]
        if entity.closed and min(xs) == 0 and min(ys) == 0 and max(xs) > 0 and max(ys) > 0:
            return Sheet(max(xs), max(ys))
    return None


def _primitives_of(doc: Drawing, layer: str) -> list[Primitive]:
    primitives: list[Primitive] = []
    for entity in doc.modelspace().query(f'*[layer=="{layer}"]'):
        kind = entity.dxftype()
        if kind == "LINE":
            start, end = entity.dxf.start, entity.dxf.end
            primitives.append(Line(_mm(start.x), _mm(start.y), _mm(end.x), _mm(end.y)))
        elif kind == "CIRCLE":
            centre = entity.dxf.center
            primitives.append(Circle(_mm(centre.x), _mm(centre.y), _mm(entity.dxf.radius)))
        elif kind == "ARC":
            centre = entity.dxf.center
            primitives.append(Arc(_mm(centre.x), _mm(centre.y), _mm(entity.dxf.radius),
                                  _angle(entity.dxf.start_angle), _angle(entity.dxf.end_angle)))
        elif kind == "LWPOLYLINE":
            primitives.append(_polyline_to_primitive(entity))
        else:
            raise ProgramError(f"{kind} #{entity.dxf.handle} on layer {layer}: no primitive of the contract "
                               f"matches this entity type")
    return primitives


__all__ = ["to_dxf", "dxf_bytes", "build_dxf", "read_dxf_primitives", "read_dxf", "GEOMETRY_LAYER", "DIMENSIONS_LAYER",
           "SHEET_LAYER"]
