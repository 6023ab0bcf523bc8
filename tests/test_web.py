"""The web page at `/` and the DXF export behind it: the real `cad2program serve` (tiny random model) driven
by a real headless Chromium through Playwright. The browser tests skip only where Chromium is not installed
(./install.sh installs it); the export endpoint is tested with plain HTTP either way."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image

from cad2program.outputs.overlay import CONFIDENCE_BANDS, NO_CONFIDENCE_COLOUR
from cad2program.contract.program import Sheet, primitives_from_json
from server_helpers import tiny_model_server

# Debian's package (what install.sh installs), else another Chromium-based browser a CI image may carry.
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))),
                "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                    reason="chromium is not installed (apt-get install chromium, or ./install.sh)")
WEB = Path(__file__).resolve().parent.parent / "cad2program" / "server" / "web"
SHEET = {"width": 200, "height": 150}
# One primitive of each type, confidences in every band of the legend.
KNOWN = [{"type": "rectangle", "x": 10, "y": 15, "width": 40, "height": 20, "confidence": 0.95},
         {"type": "circle", "x": 120, "y": 75, "radius": 25, "confidence": 0.7},
         {"type": "line", "x1": 0, "y1": 0, "x2": 50, "y2": 100, "confidence": 0.3},
         {"type": "arc", "x": 150, "y": 40, "radius": 20, "start_angle": 0, "end_angle": 90, "confidence": 0.91},
         {"type": "polyline", "points": [[10, 140], [60, 140], [60, 110]], "closed": False, "confidence": 0.6}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """`cad2program serve` on a tiny random model, batch 1 (one shape to compile: a quick start)."""
    folder = tmp_path_factory.mktemp("web")
    cache = request.config.cache.mkdir("xla") if getattr(request.config, "cache", None) else folder / "xla"
    with tiny_model_server(folder, cache, "--max-batch", "1") as running:
        yield running["url"]


@pytest.fixture(scope="module")
def drawing(tmp_path_factory) -> tuple[Path, Sheet]:
    """A generated drawing as a PNG file, and its sheet."""
    from cad2program.synth import GeneratorConfig, make_example

    example = make_example(35, 0, GeneratorConfig(style="clean", long_side_px=384, part_share=0.0))  # one the random model reads
    path = tmp_path_factory.mktemp("drawing") / "part.png"
    Image.fromarray(example.image).save(path)
    return path, example.sheet


# ----------------------------------------------------------------------------------------------
# Plain HTTP: the page's files and the DXF export
# ----------------------------------------------------------------------------------------------


def test_page_and_its_files_are_served(server):
    page = requests.get(server + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element_id in ("file-input", "recognise", "overlay", "program", "primitives", "error", "download-dxf"):
        assert f'id="{element_id}"' in page.text
    # Everything the page loads comes from this server: it works offline.
    assert not re.search(r'(src|href)="(https?:)?//', page.text)
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        asset = requests.get(f"{server}/static/{name}", timeout=10)
        assert asset.status_code == 200 and kind in asset.headers["content-type"]


def test_page_colours_are_the_server_overlays():
    """The legend and shapes use exactly the bands of `cad.overlay` (same thresholds, same colours)."""
    script = (WEB / "static" / "app.js").read_text()
    bands = re.findall(r"\{ lowest: (-?[\w.]+), colour: \"rgb\((\d+), (\d+), (\d+)\)\"", script)
    assert [(float(lowest.replace("Infinity", "inf")), tuple(map(int, rgb))) for lowest, *rgb in bands] == \
        [(lowest, colour) for lowest, colour, _ in CONFIDENCE_BANDS]
    assert "rgb({}, {}, {})".format(*NO_CONFIDENCE_COLOUR) in script
    style = (WEB / "static" / "style.css").read_text()
    for name, (_, colour, _) in zip(("high", "mid", "low"), CONFIDENCE_BANDS):
        assert f"--{name}: rgb({colour[0]}, {colour[1]}, {colour[2]});" in style


def test_dxf_export_writes_the_primitives(server):
    from cad2program.outputs import read_dxf

    response = requests.post(server + "/v1/export/dxf", json={"primitives": KNOWN, "sheet": SHEET}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dxf"
    assert response.headers["content-disposition"] == 'attachment; filename="drawing.dxf"'
    primitives, sheet = read_dxf(io.StringIO(response.content.decode()))
    expected = primitives_from_json([{k: v for k, v in p.items() if k != "confidence"} for p in KNOWN])
    assert sorted(map(repr, primitives)) == sorted(map(repr, expected))
    assert sheet == Sheet(**SHEET)


@pytest.mark.parametrize("body, status, message", [
    ({"sheet": SHEET}, 400, "primitives: missing"),
    ({"primitives": KNOWN}, 400, "sheet: missing"),
    ({"primitives": [{"type": "hexagon"}], "sheet": SHEET}, 400, "primitives[0]: unknown type 'hexagon'"),
    ({"primitives": [{"type": "circle", "x": 1, "y": 2}], "sheet": SHEET}, 400, "missing field 'radius'"),
    ({"primitives": [], "sheet": {"width": -5, "height": 10}}, 400, "sheet: width and height must be > 0"),
    ({"primitives": [KNOWN[0]] * 1001, "sheet": SHEET}, 400, "over the limit of 1000"),
    ("[1, 2", 400, "not valid JSON"),
    ("not json at all", 415, "expected Content-Type: application/json"),
])
def test_dxf_export_refuses_bad_requests_clearly(server, body, status, message):
    if isinstance(body, dict):
        response = requests.post(server + "/v1/export/dxf", json=body, timeout=30)
    else:
        content_type = "text/plain" if status == 415 else "application/json"
        response = requests.post(server + "/v1/export/dxf", data=body, headers={"Content-Type": content_type},
                                 timeout=30)
    assert response.status_code == status
    assert message in response.json()["error"]["message"]


# ----------------------------------------------------------------------------------------------
# The page in a real browser
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server + "/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@needs_chromium
def test_recognise_a_drawing_shows_overlay_program_and_table(page, drawing, tmp_path):
    path, sheet = drawing
    page.wait_for_selector("#status.pill-ok")  # the page asked /readyz
    page.set_input_files("#file-input", str(path))
    page.fill("#sheet-width", str(sheet.width))
    page.fill("#sheet-height", str(sheet.height))
    with page.expect_response("**/v1/recognize") as answer:
        page.click("#recognise")
    result = answer.value.json()
    page.wait_for_selector("svg.overlay")
    assert result["sheet"] == sheet.to_json()

    # The overlay: the drawing underneath, one coloured shape per primitive, the sheet as the view box.
    overlay = page.locator("svg.overlay")
    assert overlay.get_attribute("viewBox") == f"0 0 {sheet.to_json()['width']} {sheet.to_json()['height']}"
    assert overlay.locator("image").count() == 1
    shapes = overlay.locator(".shape")
    assert shapes.count() == len(result["primitives"])
    assert shapes.count() > 0, "the tiny random model (seed 0) answered no primitives for this drawing: pick another"
    assert page.locator("#program").inner_text().strip() == result["program"].strip()
    assert page.locator("#primitives tbody tr[data-index]").count() == len(result["primitives"])
    assert page.locator("#error").is_hidden()

    # Copy, and both downloads, hold what the server answered.
    page.click("#copy")
    assert page.evaluate("navigator.clipboard.readText()") == result["program"]
    with page.expect_download() as download:
        page.click("#download-json")
    assert download.value.suggested_filename == "part.json"
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["primitives"] == result["primitives"] and saved["sheet"] == result["sheet"]
    with page.expect_download() as download:
        page.click("#download-dxf")
    assert download.value.suggested_filename == "part.dxf"
    assert b"ENTITIES" in Path(download.value.path()).read_bytes()


@needs_chromium
def test_overlay_geometry_and_colours(page, drawing):
    """Known primitives (the server's answer replaced): y-up mm become SVG y-down, colours follow the bands."""
    page.route("**/v1/recognize", lambda route: route.fulfill(json={
        "primitives": KNOWN, "program": "# stand-in", "sheet": SHEET, "valid": True, "problems": []}))
    page.set_input_files("#file-input", str(drawing[0]))
    page.click("#recognise")
    page.wait_for_selector("svg.overlay .shape")
    shapes = page.locator("svg.overlay .shape")
    rect, circle, line, arc, polyline = (shapes.nth(i) for i in range(5))
    assert [rect.get_attribute(a) for a in ("x", "y", "width", "height")] == ["10", "115", "40", "20"]
    assert [circle.get_attribute(a) for a in ("cx", "cy", "r")] == ["120", "75", "25"]
    assert [line.get_attribute(a) for a in ("y1", "y2")] == ["150", "50"]
    assert arc.get_attribute("d").startswith("M170,110 A20,20 0 0 0 150")  # counter-clockwise from 0 to 90
    assert polyline.get_attribute("points") == "10,10 60,10 60,40"
    colours = [shapes.nth(i).evaluate("e => getComputedStyle(e).stroke") for i in range(5)]
    assert colours == ["rgb(0, 170, 60)", "rgb(245, 140, 0)", "rgb(225, 30, 30)", "rgb(0, 170, 60)",
                       "rgb(245, 140, 0)"]


@needs_chromium
def test_a_non_image_shows_the_servers_error(page, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a drawing\n")
    page.set_input_files("#file-input", str(notes))
    page.click("#recognise")
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "not a usable image" in error.inner_text()
    assert "HTTP 400" in error.inner_text()
    assert page.locator("svg.overlay").count() == 0
    assert page.locator("#download-dxf").is_disabled()
