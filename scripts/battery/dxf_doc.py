"""A battery part as a DXF drawing written with ezdxf: geometry, real DIMENSION entities, centre lines.

Shared by the battery's two CAD renderers (ezdxf's drawing add-on and LibreCAD): both read this same
file, and each draws the dimensions its own way from the DIMENSION entities. The drafting style
(arrowheads, text placement, font, line weights) is drawn per drawing from `style_rng`, so a set
mixes the styles a CAD user meets. Nothing here comes from cad2program's own DXF writer.
"""

from __future__ import annotations

import math
import random

import ezdxf

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle

ARROWS = ("", "OPEN", "OPEN30", "OBLIQUE", "ARCHTICK", "CLOSEDBLANK")
FONTS = ("LiberationSans", "OpenSans", "LiberationSans-Italic", "OpenSansCondensed-Light", "LiberationMono")


def _layers(doc, thick: int):
    doc.layers.add("OUTLINE", color=7, lineweight=thick)
    doc.layers.add("CENTER", color=7, linetype="CENTER", lineweight=18)
    doc.layers.add("DIM", color=7, lineweight=18)
    doc.layers.add("HATCH", color=7, lineweight=13)
    doc.layers.add("FRAME", color=7, lineweight=70)


def dimension_style(part, rng: random.Random) -> dict:
    """DIMSTYLE overrides for one drawing: sizes from the part's text height, a random drafting style."""
    th = part.text_height
    arrow = rng.choice(ARROWS)
    return {
        "dimtxt": th, "dimasz": round(th * rng.uniform(0.55, 0.9), 2), "dimexo": round(0.25 * th, 2),
        "dimexe": round(0.3 * th, 2), "dimgap": round(0.25 * th, 2), "dimdec": 1, "dimzin": 8,
        "dimdsep": ord("."), "dimblk": arrow, "dimtsz": 0, "dimlfac": 1, "dimscale": 1,
        "dimtad": rng.choice((1, 1, 0)),  # above the line, or centred in a gap of it
        "dimtih": rng.choice((0, 1)), "dimtoh": rng.choice((0, 1)), "dimtxsty": rng.choice(FONTS),
        "dimclrd": 7, "dimclre": 7, "dimclrt": 7, "dimlwd": 18, "dimlwe": 18,
    }


def _dimension_styles(doc, values: dict):
    """Named DIMSTYLE entries holding the drawing's style itself (not entity overrides: LibreCAD reads
    the table entry), one each for linear, outside-radius and inside-radius dimensions."""
    names = {}
    for name, base in (("PART", "EZDXF"), ("PART_R", "EZ_RADIUS"), ("PART_RI", "EZ_RADIUS_INSIDE")):
        style = doc.dimstyles.duplicate_entry(base, name)
        for key, value in values.items():
            if key == "dimblk":
                style.set_arrows(blk=value, blk1=value, blk2=value)
            else:
                style.dxf.set(key, value)
        names[base] = name
    return names


def build_part_dxf(part, rng: random.Random, written_prefixes: bool = False) -> ezdxf.document.Drawing:
    """The part's DXF document in millimetres: sheet origin at (0, 0), every entity in modelspace.

    `written_prefixes`: the diameter and radius texts carry their Ø and R in the DIMENSION's own text
    ("%%c<>", "R<>"), for renderers that add none themselves (LibreCAD); ezdxf adds its own."""
    doc = ezdxf.new("R2010", setup=True, units=ezdxf.units.MM)
    doc.header["$INSUNITS"] = 4
    doc.header["$MEASUREMENT"] = 1
    doc.header["$PLIMMIN"], doc.header["$PLIMMAX"] = (0, 0), (part.sheet.width, part.sheet.height)
    doc.header["$LTSCALE"] = round(part.sheet.longer_side / 300, 2)  # dash lengths grow with the sheet
    _layers(doc, rng.choice((35, 50, 50, 70)))
    msp = doc.modelspace()
    outline = {"layer": "OUTLINE"}
    for primitive in part.primitives:
        if isinstance(primitive, Line):
            msp.add_line((primitive.x1, primitive.y1), (primitive.x2, primitive.y2), dxfattribs=outline)
        elif isinstance(primitive, Rectangle):
            x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
            msp.add_lwpolyline([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], close=True, dxfattribs=outline)
        elif isinstance(primitive, Circle):
            msp.add_circle((primitive.x, primitive.y), primitive.radius, dxfattribs=outline)
        elif isinstance(primitive, Arc):
            msp.add_arc((primitive.x, primitive.y), primitive.radius, primitive.start_angle, primitive.end_angle,
                        dxfattribs=outline)
        elif isinstance(primitive, Polyline):
            msp.add_lwpolyline(list(primitive.points), close=primitive.closed, dxfattribs=outline)
    centre = {"layer": "CENTER"}
    for (x1, y1), (x2, y2) in part.centre_lines:
        msp.add_line((x1, y1), (x2, y2), dxfattribs=centre)
    for x, y, half in part.centre_marks:
        msp.add_line((x - half, y), (x + half, y), dxfattribs=centre)
        msp.add_line((x, y - half), (x, y + half), dxfattribs=centre)
    for x, y, r in part.pitch_circles:
        msp.add_circle((x, y), r, dxfattribs=centre)
    for loops in part.hatches:
        hatch = msp.add_hatch(dxfattribs={"layer": "HATCH"})
        hatch.set_pattern_fill("ANSI31", scale=round(part.sheet.longer_side / 150, 2))
        for kind, data in loops:
            if kind == "poly":
                hatch.paths.add_polyline_path(data, is_closed=True)
            else:
                edges = hatch.paths.add_edge_path()
                edges.add_arc((data[0], data[1]), data[2], 0, 360)
    if part.frame:
        inset = 5 if part.sheet.longer_side < 250 else 10
        w, h = part.sheet.width, part.sheet.height
        msp.add_lwpolyline([(inset, inset), (w - inset, inset), (w - inset, h - inset), (inset, h - inset)],
                           close=True, dxfattribs={"layer": "FRAME"})
    values = dimension_style(part, rng)
    styles = _dimension_styles(doc, values)
    # LibreCAD draws every dimension with the drawing's header variables, whatever its DIMSTYLE says.
    for key in ("dimtxt", "dimasz", "dimexo", "dimexe", "dimgap", "dimdec", "dimzin", "dimtad", "dimtih",
                "dimtoh", "dimscale", "dimlfac", "dimdsep", "dimtsz"):
        doc.header[f"${key.upper()}"] = values[key]
    if values["dimblk"]:
        doc.header["$DIMBLK"] = values["dimblk"]
    dim = {"layer": "DIM"}
    for d in part.dimensions:
        if d.kind == "linear":
            base = (d.p1[0], d.at) if d.direction == 0 else (d.at, d.p1[1])
            msp.add_linear_dim(base=base, p1=d.p1, p2=d.p2, angle=d.direction, dimstyle=styles["EZDXF"],
                               dxfattribs=dim).render()
        elif d.kind == "diameter":
            msp.add_diameter_dim(center=d.center, radius=d.radius, angle=d.direction,
                                 text="%%c<>" if written_prefixes else "<>",
                                 dimstyle=styles["EZ_RADIUS"], dxfattribs=dim).render()
        else:
            a = math.radians(d.direction)
            style = styles["EZ_RADIUS_INSIDE" if d.inside else "EZ_RADIUS"]
            msp.add_radius_dim(center=d.center, mpoint=(d.center[0] + d.radius * math.cos(a),
                                                        d.center[1] + d.radius * math.sin(a)),
                               text="R<>" if written_prefixes else "<>", dimstyle=style, dxfattribs=dim).render()
    return doc
