"""DXF export, drawings and overlays: what a CAD user gets out must hold exactly the program."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET

import ezdxf
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image
from primitive_strategies import drawings

from cad2program.outputs import (dxf_bytes, fit_sheet, overlay, read_dxf, read_dxf_primitives, render_program,
                                 run_program, to_dxf)
from cad2program.outputs.dxf import DIMENSIONS_LAYER, GEOMETRY_LAYER, SHEET_LAYER
from cad2program.outputs.scene import plan_dimensions
from cad2program.contract.program import Arc, Circle, Line, Polyline, ProgramError, Rectangle, Sheet

SVG = "{http://www.w3.org/2000/svg}"
SHEET = Sheet(200, 150)
PROGRAM = """\
rectangle(x=20, y=30, width=80, height=40)
circle(x=140, y=90, radius=15)
arc(x=60, y=110, radius=20.5, start_angle=300, end_angle=60)
line(x1=10, y1=10, x2=180, y2=20.5)
polyline(points=[(120, 20), (170, 20), (170, 50), (120, 50)], closed=True)
polyline(points=[(10, 130), (30, 140), (50, 130)], closed=False)
"""
PRIMITIVES = run_program(PROGRAM)


def _png(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


def _pixel(sheet: Sheet, shape: tuple[int, ...], x: float, y: float) -> tuple[int, int]:
    """Row and column of the pixel holding sheet point (x, y) mm."""
    height_px, width_px = shape[:2]
    return (min(height_px - 1, int((sheet.height - y) / sheet.height * height_px)),
            min(width_px - 1, int(x / sheet.width * width_px)))


# ----------------------------------------------------------------------------------------------
# DXF
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dxf_doc(tmp_path_factory):
    path = tmp_path_factory.mktemp("dxf") / "drawing.dxf"
    to_dxf(PRIMITIVES, SHEET, path)
    return path, ezdxf.readfile(path)


def test_dxf_reads_back_as_the_same_program(dxf_doc):
    path, _ = dxf_doc
    assert read_dxf_primitives(path) == PRIMITIVES


def test_dxf_entities_are_native_and_exact(dxf_doc):
    _, doc = dxf_doc
    assert doc.header["$INSUNITS"] == 4
    msp = doc.modelspace()
    geometry = msp.query(f'*[layer=="{GEOMETRY_LAYER}"]')
    assert [e.dxftype() for e in geometry] == ["LWPOLYLINE", "CIRCLE", "ARC", "LINE", "LWPOLYLINE", "LWPOLYLINE"]
    rect, circle, arc, line, polygon, chain = geometry
    assert rect.closed and [tuple(p) for p in rect.get_points("xy")] == [(20, 30), (100, 30), (100, 70), (20, 70)]
    assert tuple(circle.dxf.center)[:2] == (140, 90) and circle.dxf.radius == 15
    assert tuple(arc.dxf.center)[:2] == (60, 110) and arc.dxf.radius == 20.5
    assert (arc.dxf.start_angle, arc.dxf.end_angle) == (300, 60)  # counter-clockwise, through 0 degrees
    assert tuple(line.dxf.start)[:2] == (10, 10) and tuple(line.dxf.end)[:2] == (180, 20.5)
    assert polygon.closed and len(polygon) == 4
    assert not chain.closed and [tuple(p) for p in chain.get_points("xy")] == [(10, 130), (30, 140), (50, 130)]
    border = msp.query(f'LWPOLYLINE[layer=="{SHEET_LAYER}"]')
    assert len(border) == 1 and [tuple(p) for p in border[0].get_points("xy")][2] == (200, 150)


def test_dxf_dimensions_measure_every_size(dxf_doc):
    _, doc = dxf_doc
    dims = doc.modelspace().query("DIMENSION")
    assert {d.dxf.layer for d in dims} == {DIMENSIONS_LAYER}
    measured = sorted((d.dimtype, round(d.get_measurement(), 6)) for d in dims)
    # 0 linear (rectangle width and height), 3 diameter (circle), 4 radius (arc).
    assert measured == [(0, 40.0), (0, 80.0), (3, 30.0), (4, 20.5)]
    for dim in dims:  # rendered: each has its block of lines, arrows and text
        block = dim.get_geometry_block()
        assert block is not None and len(block) > 0
    texts = [e.dxf.text for d in dims for e in d.get_geometry_block() if e.dxftype() == "MTEXT"]
    assert any("30" in t for t in texts) and any("R20.5" in t for t in texts)


def test_dxf_passes_audit(dxf_doc):
    _, doc = dxf_doc
    auditor = doc.audit()
    assert not auditor.has_errors, [e.message for e in auditor.errors]


def test_dxf_to_streams_and_without_dimensions():
    text = io.StringIO()
    to_dxf(PRIMITIVES, SHEET, text, dimensions=False)
    doc = ezdxf.read(io.StringIO(text.getvalue()))
    assert len(doc.modelspace().query("DIMENSION")) == 0
    assert read_dxf_primitives(io.BytesIO(dxf_bytes(PRIMITIVES, SHEET))) == PRIMITIVES


def test_read_dxf_gives_the_sheet_back(dxf_doc):
    path, _ = dxf_doc
    assert read_dxf(path) == (PRIMITIVES, SHEET)


def test_closed_polyline_shaped_like_a_rectangle_stays_a_polyline():
    square = Polyline(((10, 10), (30, 10), (30, 30), (10, 30)), closed=True)
    assert read_dxf_primitives(io.BytesIO(dxf_bytes([square], SHEET))) == [square]


def test_foreign_dxf_rectangles_read_as_rectangles_and_unknown_entities_are_refused():
    doc = ezdxf.new()
    msp = doc.modelspace()
    msp.add_lwpolyline([(5, 5), (25, 5), (25, 15), (5, 15)], close=True, dxfattribs={"layer": GEOMETRY_LAYER})
    stream = io.StringIO()
    doc.write(stream)
    assert read_dxf_primitives(io.StringIO(stream.getvalue())) == [Rectangle(5, 5, 20, 10)]
    msp.add_ellipse((50, 50), major_axis=(10, 0), ratio=0.5, dxfattribs={"layer": GEOMETRY_LAYER})
    stream = io.StringIO()
    doc.write(stream)
    with pytest.raises(ProgramError, match="ELLIPSE"):
        read_dxf_primitives(io.StringIO(stream.getvalue()))


# ----------------------------------------------------------------------------------------------
# Drawings
# ----------------------------------------------------------------------------------------------


def test_png_drawing_shows_the_geometry_where_it_lies():
    image = _png(render_program(PRIMITIVES, SHEET, px_long_side=800))
    assert image.shape == (600, 800, 3)
    dark = image.max(axis=2) < 100

    def ink_near(x, y):
        row, col = _pixel(SHEET, image.shape, x, y)
        return dark[max(0, row - 2):row + 3, max(0, col - 2):col + 3].any()

    assert ink_near(20, 50) and ink_near(100, 50)            # rectangle's sides
    assert ink_near(155, 90) and not ink_near(140, 97)       # on the circle, inside it
    assert ink_near(80.5, 110) and not ink_near(39.5, 110)   # the arc passes 0 degrees, not 180
    assert not ink_near(60, 60)                              # inside the rectangle: paper
    assert (image[image.shape[0] // 2, 400:] == 255).any()


def test_png_annotations_add_dimensions_in_their_own_colour():
    plain = _png(render_program(PRIMITIVES, SHEET, px_long_side=600, annotate=False))
    annotated = _png(render_program(PRIMITIVES, SHEET, px_long_side=600))
    blue = (annotated[:, :, 2].astype(int) - annotated[:, :, 0] > 60)
    assert blue.sum() > 500 and not (plain[:, :, 2].astype(int) - plain[:, :, 0] > 60).any()
    placement = plan_dimensions(PRIMITIVES, SHEET)[0]  # the rectangle's width dimension line
    row, col = _pixel(SHEET, plain.shape, 60, placement.width_line_y)
    assert blue[row - 3:row + 4, col - 3:col + 4].any()
    # It moved off the line drawn at y 10 to 20.5 under the rectangle rather than cross it.
    assert not 8 <= placement.width_line_y <= 22.5


def test_svg_drawing_has_one_shape_per_primitive_and_the_sizes():
    root = ET.fromstring(render_program(PRIMITIVES, SHEET, fmt="svg"))
    assert root.get("viewBox") == "0 0 200 150" and root.get("width") == "200mm"
    geometry = root.find(f"{SVG}g[@id='geometry']")
    shapes = list(geometry)
    assert [s.tag.removeprefix(SVG) for s in shapes] == ["rect", "circle", "path", "line", "polygon", "polyline"]
    assert [s.get("data-type") for s in shapes] == [p.TYPE for p in PRIMITIVES]
    rect = shapes[0]
    assert (rect.get("x"), rect.get("y"), rect.get("width"), rect.get("height")) == ("20", "80", "80", "40")
    assert shapes[1].get("cy") == "60"  # y flipped: 150 - 90
    # 300 -> 60 degrees counter-clockwise: a 120 degree sweep, small arc, SVG sweep-flag 0.
    assert shapes[2].get("d").split(" A")[1].split()[1:4] == ["0", "0", "0"]
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert {"80", "40", "Ø30", "R20.5"} <= texts


def test_drawing_rejects_unknown_formats_and_sizes():
    with pytest.raises(ValueError, match="format"):
        render_program(PRIMITIVES, SHEET, fmt="gif")
    with pytest.raises(ValueError, match="px_long_side"):
        render_program(PRIMITIVES, SHEET, px_long_side=0)


def test_fit_sheet_holds_the_primitives_with_a_margin():
    assert fit_sheet([Circle(100, 50, 20)]) == Sheet(132, 77)
    assert fit_sheet([Line(0, 0, 10, 10)]) == Sheet(50, 50)
    assert fit_sheet(PRIMITIVES) == Sheet(198, 154)  # x to the line's 180, y to the polyline's 140
    # An arc below its centre: its highest points are its ends (y 89.74), its rightmost the 340 degree end.
    assert fit_sheet([Arc(100, 100, 30, 200, 340)]) == Sheet(141.1, 98.8)


# ----------------------------------------------------------------------------------------------
# Overlays
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [0, 3])
def test_overlay_keeps_the_input_size_and_marks_the_primitives(channels):
    height_px, width_px = 250, 333  # deliberately not the drawing's 4:3 pixel grid
    base = np.full((height_px, width_px), 230, np.uint8)
    image = base if channels == 0 else np.repeat(base[:, :, None], 3, axis=2)
    circle = Circle(100, 75, 30)
    out = _png(overlay(image, [circle], SHEET, [0.95]))
    assert out.shape == (height_px, width_px, 3)
    row, col = _pixel(SHEET, out.shape, 130, 75)  # on the circle's right side
    patch = out[row - 2:row + 3, col - 2:col + 3].reshape(-1, 3).astype(int)
    assert (np.abs(patch - 230).sum(axis=1) > 60).any()
    greenest = patch[np.argmax(patch[:, 1] - patch[:, 0])]
    assert greenest[1] > greenest[0] + 40  # confidence 0.95: green
    row, col = _pixel(SHEET, out.shape, 100, 75)  # the centre: not drawn over
    assert (out[row, col] == 230).all()


def test_overlay_colours_follow_the_confidence_bands():
    image = np.full((450, 600, 3), 255, np.uint8)
    lines = [Line(20, 30, 180, 30), Line(20, 75, 180, 75), Line(20, 120, 180, 120)]
    out = _png(overlay(image, lines, SHEET, [0.95, 0.7, 0.3]))

    def stroke_colour(y):  # the most saturated pixel across the stroke (its edges are anti-aliased)
        row, col = _pixel(SHEET, out.shape, 150, y)
        column = out[row - 3:row + 4, col].astype(int)
        return column[np.argmax(column.max(axis=1) - column.min(axis=1))]

    colours = [stroke_colour(y) for y in (30, 75, 120)]
    green, orange, red = colours
    assert green[1] > green[0] and green[1] > green[2]
    assert orange[0] > orange[2] and orange[1] > orange[2] and orange[0] >= orange[1]
    assert red[0] > red[1] + 60 and red[0] > red[2] + 60
    with pytest.raises(ValueError, match="2 confidences for 3 primitives"):
        overlay(image, lines, SHEET, [0.9, 0.9])


def test_overlay_svg_embeds_the_input_under_one_shape_per_primitive():
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :, 0] = 200
    data = overlay(image, PRIMITIVES, SHEET, [0.95, 0.7, 0.3, 1.0, 0.6, 0.1], fmt="svg")
    root = ET.fromstring(data)
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("160", "120", "0 0 200 150")
    embedded = root.find(f"{SVG}image").get("href")
    assert embedded.startswith("data:image/png;base64,")
    picture = _png(base64.b64decode(embedded.split(",", 1)[1]))
    assert picture.shape == (120, 160, 3) and (picture == image).all()
    shapes = list(root.find(f"{SVG}g[@id='geometry']"))
    assert len(shapes) == len(PRIMITIVES)
    assert [s.get("stroke") for s in shapes][:3] == ["#00aa3c", "#f58c00", "#e11e1e"]
    assert root.find(f"{SVG}g[@id='legend']") is not None
    labels = [t.text for t in root.find(f"{SVG}g[@id='labels']").iter(f"{SVG}text")]
    assert labels[:3] == ["80 × 40  95%", "Ø30  70%", "R20.5  30%"]


def test_overlay_without_confidences_has_no_legend():
    root = ET.fromstring(overlay(np.zeros((60, 80), np.uint8), [Circle(100, 75, 30)], SHEET, fmt="svg"))
    assert root.find(f"{SVG}g[@id='legend']") is None
    assert [t.text for t in root.iter(f"{SVG}text")] == ["Ø60"]


# ----------------------------------------------------------------------------------------------
# The render command
# ----------------------------------------------------------------------------------------------


@pytest.fixture()
def program_file(tmp_path):
    path = tmp_path / "part.txt"
    path.write_text(PROGRAM)
    return path


@pytest.mark.parametrize("suffix", [".png", ".svg", ".dxf"])
def test_render_command_writes_each_format(program_file, tmp_path, suffix):
    from cad2program.cli import main

    out = tmp_path / f"part{suffix}"
    assert main(["render", str(program_file), "--out", str(out), "--sheet", "200x150", "--size", "400"]) == 0
    data = out.read_bytes()
    if suffix == ".png":
        assert _png(data).shape == (300, 400, 3)
    elif suffix == ".svg":
        assert ET.fromstring(data).get("viewBox") == "0 0 200 150"
    else:
        assert read_dxf_primitives(out) == PRIMITIVES


def test_render_command_takes_the_sheet_of_a_json_label(tmp_path):
    from cad2program.cli import main

    label = tmp_path / "label.json"
    label.write_text('{"image": "x.png", "sheet": {"width": 120, "height": 80}, '
                     '"primitives": [{"type": "circle", "x": 30, "y": 5, "radius": 5}]}')
    out = tmp_path / "label.png"
    assert main(["render", str(label), "--out", str(out), "--size", "600"]) == 0
    assert _png(out.read_bytes()).shape == (400, 600, 3)


def test_render_command_reports_a_bad_program_with_its_position(tmp_path, capsys):
    from cad2program.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_text("circle(x=10, y=10, radius=5)\nrectangle(x=1, y=2, width=three, height=4)\n")
    assert main(["render", str(bad), "--out", str(tmp_path / "bad.png")]) == 2
    err = capsys.readouterr().err
    assert "bad.txt: line 2, column 27" in err and "three" in err and "Traceback" not in err
    assert not (tmp_path / "bad.png").exists()


def test_render_command_refuses_a_malformed_sheet(program_file, tmp_path, capsys):
    from cad2program.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(program_file), "--out", str(tmp_path / "x.png"), "--sheet", "200by150"])
    assert exit_info.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err


def test_render_command_redraws_its_own_dxf_identically(program_file, tmp_path, capsys):
    from cad2program.cli import main

    dxf, direct, from_dxf = tmp_path / "part.dxf", tmp_path / "direct.png", tmp_path / "from_dxf.png"
    assert main(["render", str(program_file), "--out", str(dxf)]) == 0
    assert main(["render", str(program_file), "--out", str(direct)]) == 0
    assert main(["render", str(dxf), "--out", str(from_dxf)]) == 0
    assert from_dxf.read_bytes() == direct.read_bytes()
    not_dxf = tmp_path / "not.dxf"
    not_dxf.write_text("hello")
    capsys.readouterr()
    assert main(["render", str(not_dxf), "--out", str(tmp_path / "x.png")]) == 2
    assert "not.dxf: not a readable DXF file" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------
# Any valid drawing
# ----------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawings(max_primitives=6))
def test_any_valid_drawing_round_trips_through_dxf_and_draws(drawing):
    sheet, primitives = drawing
    assert read_dxf(io.BytesIO(dxf_bytes(primitives, sheet))) == (primitives, sheet)
    root = ET.fromstring(render_program(primitives, sheet, fmt="svg"))
    assert len(list(root.find(f"{SVG}g[@id='geometry']"))) == len(primitives)
    assert _png(render_program(primitives, sheet, px_long_side=128)).shape[1 if sheet.width >= sheet.height else 0] == 128
    image = np.full((40, 60), 200, np.uint8)
    assert _png(overlay(image, primitives, sheet, [0.5] * len(primitives))).shape == (40, 60, 3)
