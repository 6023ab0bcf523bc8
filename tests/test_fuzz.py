"""Fuzzing (Hypothesis): whatever arrives, the answer is a 4xx with a message or a clear CLI error and exit
status, never a 500, a traceback or a dead process.

Bounded: the default profile tries a few examples per property (the whole file runs in well under a
minute); CAD2PROGRAM_FUZZ=long tries many more (minutes; run it before a release, or in a nightly job).
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from server_helpers import free_port, wait_ready

LONG = os.environ.get("CAD2PROGRAM_FUZZ") == "long"
FUZZ = settings(max_examples=400 if LONG else 20, deadline=None, derandomize=not LONG,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------
# Images: odd modes and formats, then broken
# ----------------------------------------------------------------------------------------------


def _drawing(mode: str, size=(64, 48)) -> Image.Image:
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).rectangle((8, 8, 40, 30), outline=0, width=2)
    if mode == "I;16":
        return Image.fromarray((np.asarray(image).astype(np.uint16) * 257))
    return image.convert(mode)


def _encoded(kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "gif-animated":
        frames = [_drawing("P"), _drawing("P").rotate(90)]
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    else:
        mode, fmt = {"png-grey": ("L", "PNG"), "png-16bit": ("I;16", "PNG"), "png-palette": ("P", "PNG"),
                     "png-rgba": ("RGBA", "PNG"), "png-bilevel": ("1", "PNG"), "jpeg-cmyk": ("CMYK", "JPEG"),
                     "jpeg-rgb": ("RGB", "JPEG"), "tiff": ("RGB", "TIFF"), "tiff-16bit": ("I;16", "TIFF"),
                     "bmp": ("RGB", "BMP"), "webp": ("RGB", "WEBP")}[kind]
        _drawing(mode).save(out, fmt)
    return out.getvalue()


IMAGE_KINDS = ["png-grey", "png-16bit", "png-palette", "png-rgba", "png-bilevel", "jpeg-cmyk", "jpeg-rgb",
               "tiff", "tiff-16bit", "bmp", "webp", "gif-animated"]
IMAGES = {kind: _encoded(kind) for kind in IMAGE_KINDS}


@st.composite
def image_bytes(draw) -> bytes:
    """A valid image of some odd kind, then maybe truncated, its header bytes changed, or bytes spliced in."""
    data = bytearray(IMAGES[draw(st.sampled_from(IMAGE_KINDS))])
    for _ in range(draw(st.integers(0, 3))):
        change = draw(st.sampled_from(["truncate", "header", "anywhere", "splice"]))
        if not data:
            break
        if change == "truncate":
            data = data[:draw(st.integers(0, len(data) - 1))]
        elif change in ("header", "anywhere"):
            at = draw(st.integers(0, min(len(data), 64 if change == "header" else len(data)) - 1))
            data[at] = draw(st.integers(0, 255))
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(max_size=32))
    return bytes(data)


@FUZZ
@given(image_bytes())
def test_any_image_bytes_load_or_raise_an_image_error(data):
    from cad2program.contract.dataset import ImageError, load_image

    try:
        grey = load_image(data, work_pixels=1_000_000)
    except ImageError as err:
        assert str(err) and err.reason
    else:
        assert grey.dtype == np.uint8 and grey.ndim == 2 and grey.size > 0


def test_every_odd_kind_of_valid_image_loads():
    from cad2program.contract.dataset import load_image

    for kind, data in IMAGES.items():
        grey = load_image(data)
        assert grey.shape == (48, 64) and grey.min() < 128 < grey.max(), kind  # the drawing is still there


# ----------------------------------------------------------------------------------------------
# The server: every endpoint, any body
# ----------------------------------------------------------------------------------------------


class FakeRecognizer:
    """One circle a drawing, at once: the fuzz is about requests, not about the model."""

    image_size = 16
    refine = False

    def __init__(self):
        from types import SimpleNamespace

        self.config = SimpleNamespace(model=SimpleNamespace(num_image_tokens=5))

    def recognize_prepared(self, images, sheets):
        from cad2program.contract.program import Circle
        from cad2program.reading import Recognition

        return [Recognition(s, [Circle(10, 10, 5)], [0.5], valid=True) for s in sheets]


@pytest.fixture(scope="module")
def server():
    import uvicorn

    from cad2program.commands.serve import server_config
    from cad2program.server.app import create_app
    from cad2program.server.settings import ServerSettings

    port = free_port()
    app = create_app(FakeRecognizer(), ServerSettings(max_batch=4, max_body_bytes=2 * 2**20, body_timeout_s=5))
    instance = uvicorn.Server(server_config(app, "127.0.0.1", port, 64, "warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, 30)
    yield url
    assert app.state.metrics.internal_errors._value.get() == 0  # no bug was hit, whatever came
    assert requests.get(url + "/healthz", timeout=5).status_code == 200
    instance.should_exit = True
    thread.join(10)


def assert_client_error_or_success(response: requests.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        message = response.json()["error"]["message"]
        assert isinstance(message, str) and message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
b64_images = image_bytes().map(lambda data: base64.b64encode(data).decode())
data_fields = b64_images | b64_images.map(lambda text: "data:image/png;base64," + text) | json_values
sheets = (st.fixed_dictionaries({"width": json_values | st.floats(-1e9, 1e9), "height": json_values | st.floats(0, 600)})
          | json_values)
primitive = st.fixed_dictionaries({"type": st.sampled_from(["line", "circle", "arc", "rectangle", "polyline", "x"])},
                                  optional={k: json_values | st.floats() for k in
                                            ("x", "y", "x1", "y1", "x2", "y2", "radius", "width", "height",
                                             "start_angle", "end_angle", "points", "closed", "confidence")})
recognize_bodies = st.fixed_dictionaries({}, optional={"data": data_fields, "sheet": sheets, "other": json_values})
chat_bodies = st.fixed_dictionaries({"messages": st.lists(st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", 3]),
     "content": json_values | st.lists(st.one_of(
         st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=30) | st.just("sheet: 200x150")}),
         st.fixed_dictionaries({"type": st.just("image_url"),
                                "image_url": st.fixed_dictionaries({"url": data_fields.map(str)}) | json_values}),
     ), max_size=3)}), max_size=3)},
    optional={"model": json_values, "max_tokens": json_values, "stream": json_values, "n": json_values,
              "sheet": sheets})
export_bodies = st.fixed_dictionaries({}, optional={"primitives": st.lists(primitive, max_size=4) | json_values,
                                                    "sheet": sheets})
ENDPOINT_BODIES = {"/serve/cad_model": recognize_bodies, "/v1/chat/completions": chat_bodies,
                   "/v1/export/dxf": export_bodies}


@FUZZ
@given(st.sampled_from(sorted(ENDPOINT_BODIES)), st.data())
def test_json_endpoints_answer_any_json_with_a_4xx_or_a_result(server, endpoint, data):
    body = data.draw(ENDPOINT_BODIES[endpoint] | json_values)
    text = json.dumps(body, allow_nan=True)
    response = requests.post(server + endpoint, data=text, headers={"Content-Type": "application/json"}, timeout=30)
    assert_client_error_or_success(response)


@FUZZ
@given(st.sampled_from(sorted(ENDPOINT_BODIES) + ["/v1/recognize"]), st.binary(max_size=300),
       st.sampled_from(["application/json", "multipart/form-data; boundary=x", "text/plain", "",
                        "application/json; charset=latin-1", "multipart/form-data"]))
def test_every_endpoint_answers_any_bytes_with_a_4xx(server, endpoint, body, content_type):
    response = requests.post(server + endpoint, data=body, headers={"Content-Type": content_type}, timeout=30)
    assert_client_error_or_success(response)


@FUZZ
@given(image_bytes(), st.none() | st.text(max_size=10), st.none() | st.text(max_size=10), st.text(max_size=20))
def test_uploads_answer_any_file_and_fields_with_a_4xx_or_a_result(server, data, width, height, name):
    fields = {k: v for k, v in (("sheet_width", width), ("sheet_height", height)) if v is not None}
    response = requests.post(server + "/v1/recognize", files={"file": (name or "x", data)}, data=fields, timeout=30)
    assert_client_error_or_success(response)


@FUZZ
@given(st.sampled_from(["/healthz", "/readyz", "/metrics", "/v1/models", "/", "/nowhere", "/static/../x"]),
       st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
def test_other_endpoints_and_methods_never_fail(server, path, method):
    assert_client_error_or_success(requests.request(method, server + path, timeout=30))


# ----------------------------------------------------------------------------------------------
# Program text, label lines, DXF files: the parsers and the CLI
# ----------------------------------------------------------------------------------------------

PROGRAM_PIECES = ["circle(", "line(", "arc(", "rectangle(", "polyline(", "points=[", "(", ")", "[", "]", "x=",
                  "y=", "radius=", "start_angle=", "closed=True", ", ", "\n", "-", "1e400", "nan", "3.5", "0",
                  "#", "'", "**", "lambda", "__import__('os')", "\x00", "é"]
program_texts = st.lists(st.sampled_from(PROGRAM_PIECES) | st.text(max_size=5), max_size=40).map("".join)


@FUZZ
@given(program_texts | st.text(max_size=200))
def test_program_text_parses_or_raises_a_program_error(text):
    from cad2program.contract.program import ProgramError
    from cad2program.contract.program_text import parse_any

    try:
        primitives = parse_any(text)
    except ProgramError as err:
        assert str(err)
    else:
        assert isinstance(primitives, list)


def run_cli(*argv: str) -> tuple[int, str]:
    """cad2program in-process, with what it printed to stderr."""
    import contextlib

    from cad2program.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(list(argv))
    return code, err.getvalue() + out.getvalue()


label_lines = st.one_of(
    json_values.map(json.dumps),
    st.fixed_dictionaries({"image": st.sampled_from(["a.png", "../a.png", "/etc/hostname", "", "a.png\x00"]) | json_values,
                           "sheet": sheets, "primitives": st.lists(primitive, max_size=3) | json_values}).map(json.dumps),
    st.text(max_size=40))


@FUZZ
@given(st.lists(label_lines, max_size=5))
def test_check_reports_any_label_lines_without_a_traceback(lines):
    with tempfile.TemporaryDirectory() as folder:
        Image.new("L", (40, 30), 255).save(Path(folder) / "a.png")
        (Path(folder) / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
        code, printed = run_cli("check", folder)
    assert code in (0, 1) and "Traceback" not in printed


DXF = (ROOT / "docs" / "render-example" / "bracket.dxf").read_bytes()


@st.composite
def dxf_bytes(draw) -> bytes:
    data = bytearray(DXF)
    for _ in range(draw(st.integers(1, 4))):
        change = draw(st.sampled_from(["truncate", "byte", "line"]))
        if change == "truncate":
            data = data[:draw(st.integers(0, len(data)))]
        elif change == "byte" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        else:
            lines = data.split(b"\n")
            lines[draw(st.integers(0, len(lines) - 1))] = draw(st.sampled_from(
                [b"", b"-1e400", b"nan", b"  0", b"LINE", b"ARC", b"999", b"abc", b"EOF"]))
            data = bytearray(b"\n".join(lines))
    return bytes(data)


@settings(FUZZ, max_examples=100 if LONG else 6)  # ezdxf takes about a second a file here
@given(dxf_bytes())
def test_render_reads_any_dxf_file_or_says_why_not(data):
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.dxf"
        source.write_bytes(data)
        code, printed = run_cli("render", str(source), "--out", str(Path(folder) / "out.svg"))
    assert code in (0, 2) and "Traceback" not in printed, printed[-500:]
    if code == 2:
        assert "error:" in printed


@FUZZ
@given(program_texts | st.text(max_size=100))
def test_render_reads_any_program_file_or_says_why_not(text):
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.txt"
        source.write_text(text, encoding="utf-8", errors="surrogatepass")
        code, printed = run_cli("render", str(source), "--out", str(Path(folder) / "out.svg"))
    assert code in (0, 2) and "Traceback" not in printed


@pytest.mark.parametrize("text", ["[" * 5000 + "]" * 5000, '{"primitives": ' + "[" * 5000 + "]" * 5000 + "}",
                                  "circle(x=" + "-" * 5000 + "1, y=1, radius=1)", "(" * 300 + ")" * 300])
def test_deeply_nested_programs_are_a_clear_error(tmp_path, text):
    source = tmp_path / "deep.txt"
    source.write_text(text)
    code, printed = run_cli("render", str(source), "--out", str(tmp_path / "out.svg"))
    assert code == 2 and "error:" in printed and "Traceback" not in printed
