"""Dataset folders: every bad line reported with its number and reason, `cad2program check`, load_image."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cad2program.contract.dataset import (ImageError, LineProblem, check_image, load_dataset, load_image, load_labels,
                                          record_to_json, write_labels)
from cad2program.errors import UserError
from cad2program.contract.program import Circle, Line, Rectangle, Sheet

SHEET = {"width": 200, "height": 150}
CIRCLE = {"type": "circle", "x": 30, "y": 5, "radius": 5}


def _png_bytes(array: np.ndarray, **save) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG", **save)
    return out.getvalue()


def _white(width: int = 40, height: int = 30) -> np.ndarray:
    return np.full((height, width), 255, np.uint8)


def _write_folder(root: Path, lines: list, images: dict[str, bytes]) -> Path:
    for name, data in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    (root / "labels.jsonl").write_text(text, encoding="utf-8")
    return root


def _label(image: str, primitives=None, sheet=None, **extra) -> dict:
    return {"image": image, "sheet": sheet or SHEET, "primitives": [CIRCLE] if primitives is None else primitives,
            **extra}


@pytest.fixture
def salted_folder(tmp_path: Path) -> Path:
    """A folder whose labels.jsonl mixes good lines with one of each kind of bad line."""
    png = _png_bytes(_white(40, 30))
    images = {f"images/good{i}.png": png for i in range(3)}
    images["images/truncated.png"] = png[: len(png) // 2]
    images["images/corrupt.png"] = b"this is not a picture"
    images["images/empty.png"] = b""
    lines = [
        _label("images/good0.png", style="clean"),                                          # 1 good
        '{"image": "images/good1.png", "sheet": ',                                            # 2 bad JSON
        _label("images/good1.png", [{"type": "circel", "x": 1, "y": 1, "radius": 1}]),       # 3 unknown type
        _label("images/good1.png", [{"type": "circle", "x": 1, "y": 1}]),                    # 4 missing field
        _label("images/missing.png"),                                                        # 5 image missing
        _label("images/truncated.png"),                                                      # 6 truncated
        _label("images/corrupt.png"),                                                        # 7 not an image
        "[1, 2, 3]",                                                                         # 8 not an object
        _label("images/good1.png", sheet={"width": 200}),                                    # 9 bad sheet
        "",                                                                                  # 10 blank
        "   ",                                                                               # 11 blank
        {"image": "images/good1.png", "sheet": SHEET},                                       # 12 no primitives
        _label("images/good1.png", [{"type": "circle", "x": 1, "y": 1, "radius": 0}]),       # 13 invalid
        _label("images/good1.png", [{"type": "line", "x1": 1, "y1": 1, "x2": 300, "y2": 1}]),  # 14 off sheet
        _label("images/good1.png", [{"type": "circle", "x": 1.25, "y": 1, "radius": 1}]),    # 15 bad number
        _label("images/good1.png", style="scan"),                                            # 16 good
        _label("images/good0.png"),                                                          # 17 duplicate
        _label("images/empty.png"),                                                          # 18 empty file
        _label("images/good2.png", [CIRCLE, {"type": "rectangle", "x": 1, "y": 1, "width": 5, "height": 5,
                                             "colour": "red"}]),                             # 19 unknown field
        _label("images/good2.png", []),                                                      # 20 good, empty
    ]
    return _write_folder(tmp_path / "salted", lines, images)


EXPECTED_PROBLEMS = {
    2: "bad JSON",
    3: "unknown type 'circel'",
    4: "missing field 'radius'",
    5: "'images/missing.png': file not found",
    6: "'images/truncated.png': cannot decode",
    7: "'images/corrupt.png': not an image",
    8: "expected a JSON object",
    9: "bad sheet: sheet: missing field height",
    12: "missing key 'primitives'",
    13: "radius must be > 0",
    14: "lies outside the 200 x 150 sheet",
    15: "more than one decimal",
    17: "already labelled on line 1",
    18: "'images/empty.png': the file is empty",
    19: "unknown field 'colour'",
}


def test_every_bad_line_is_reported_with_its_number_and_reason(salted_folder):
    records, problems = load_labels(salted_folder)
    assert {p.line_number for p in problems} == set(EXPECTED_PROBLEMS)
    for problem in problems:
        assert EXPECTED_PROBLEMS[problem.line_number] in problem.message, str(problem)
        assert str(problem).startswith(f"labels.jsonl:{problem.line_number}: ")
    assert [r.line_number for r in records] == [1, 16, 20]
    first = records[0]
    assert first.image_key == "images/good0.png"
    assert first.image_path == salted_folder / "images/good0.png"
    assert first.sheet == Sheet(200, 150)
    assert first.primitives == [Circle(30, 5, 5)]
    assert first.extra == {"style": "clean"}
    assert first.image_size == (40, 30)
    assert records[2].primitives == []


def test_without_image_checks_only_label_problems_remain(salted_folder):
    records, problems = load_labels(salted_folder, check_images=False)
    assert {p.line_number for p in problems} == set(EXPECTED_PROBLEMS) - {5, 6, 7, 18}
    assert all(r.image_size is None for r in records)


def test_prediction_folders_need_no_primitives(salted_folder):
    records, problems = load_labels(salted_folder, require_primitives=False)
    assert 12 not in {p.line_number for p in problems}
    assert any(r.line_number == 12 and r.primitives == [] for r in records)


def test_line_problem_text():
    assert str(LineProblem(12, "unknown type 'circel' in primitives[2]")) == \
        "labels.jsonl:12: unknown type 'circel' in primitives[2]"


def test_missing_folder_or_labels_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist.*labels.jsonl"):
        load_labels(tmp_path / "nowhere")
    with pytest.raises(UserError, match="labels.jsonl not found"):
        load_labels(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        load_labels(tmp_path / "file")


def test_load_dataset_logs_every_skipped_line(salted_folder):
    logged = []
    records = load_dataset(salted_folder, logger=logged.append)
    assert len(records) == 3
    assert "skipped 15 lines" in logged[0]
    assert [line.strip().split(":")[1] for line in logged[1:]] == [str(n) for n in sorted(EXPECTED_PROBLEMS)]


def test_load_dataset_refuses_a_folder_with_nothing_usable(tmp_path):
    _write_folder(tmp_path, ["{oops"], {})
    with pytest.raises(UserError, match="no usable drawing"):
        load_dataset(tmp_path, logger=lambda _: None)


def test_a_hand_written_folder_in_the_contract_format_loads(tmp_path):
    (tmp_path / "images").mkdir()
    Image.fromarray(_white(400, 300)).save(tmp_path / "images" / "0001.png")
    Image.fromarray(_white(300, 300)).convert("RGB").save(tmp_path / "images" / "0002.jpg", quality=90)
    (tmp_path / "labels.jsonl").write_text(
        '{"image": "images/0001.png", "sheet": {"width": 200, "height": 150}, "primitives": ['
        '{"type": "rectangle", "x": 10, "y": 15, "width": 40, "height": 20}, '
        '{"type": "circle", "x": 30, "y": 5, "radius": 5}]}\r\n'
        '{"image": "images/0002.jpg", "sheet": {"width": 100, "height": 100.5}, "primitives": ['
        '{"type": "polyline", "points": [[0, 0], [20, 0], [20, 10]], "closed": false}, '
        '{"type": "arc", "x": 50, "y": 50, "radius": 12.5, "start_angle": 270, "end_angle": 90}, '
        '{"type": "line", "x1": 0, "y1": 100.5, "x2": 100, "y2": 0}], "style": "photo", "source": "me"}',
        encoding="utf-8")
    records, problems = load_labels(tmp_path)
    assert problems == []
    assert records[0].primitives == [Rectangle(10, 15, 40, 20), Circle(30, 5, 5)]
    assert records[1].sheet == Sheet(100, 100.5)
    assert records[1].extra == {"style": "photo", "source": "me"}
    assert records[1].image_size == (300, 300)


def test_write_labels_round_trip(tmp_path):
    png = _png_bytes(_white())
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(png)
    rows = [record_to_json("images/a.png", Sheet(200, 150), [Line(0, 0, 10.5, 3)], style="clean")]
    assert write_labels(tmp_path / "labels.jsonl", rows) == 1
    records, problems = load_labels(tmp_path)
    assert problems == [] and records[0].primitives == [Line(0, 0, 10.5, 3)]
    assert json.loads((tmp_path / "labels.jsonl").read_text())["primitives"][0]["x2"] == 10.5


# ----------------------------------------------------------------------------------------------
# cad2program check
# ----------------------------------------------------------------------------------------------


def _check(capsys, *args: str) -> tuple[int, str, str]:
    from cad2program.cli import main
    code = main(["check", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_reports_bad_lines_and_exits_1(salted_folder, capsys):
    code, out, _ = _check(capsys, str(salted_folder))
    assert code == 1
    for number in EXPECTED_PROBLEMS:
        assert f"labels.jsonl:{number}: " in out
    assert "3 drawings OK, 15 bad lines" in out
    assert "primitives: 2 (circle 2)" in out
    assert "styles: clean 1, scan 1" in out
    assert "widths 40 to 40 px" in out
    assert "1 drawing with no primitive: lines 20" in out


def test_check_of_a_good_folder_exits_0_and_warns_about_scope(tmp_path, capsys):
    png = _png_bytes(_white(40, 30))
    lines = [_label("a.png"), _label("b.png", sheet={"width": 40, "height": 30},
                                     primitives=[{"type": "circle", "x": 3, "y": 5, "radius": 5}])]
    _write_folder(tmp_path, lines, {"a.png": png, "b.png": png})
    code, out, _ = _check(capsys, str(tmp_path))
    assert code == 0
    assert "2 drawings OK, 0 bad lines" in out
    assert "outside the contract's scope" in out and "line 2: sheet width 40 mm is outside 50..500 mm" in out


def test_check_exit_2_for_a_missing_folder(tmp_path, capsys):
    code, out, err = _check(capsys, str(tmp_path / "nowhere"))
    assert code == 2
    assert "does not exist" in err and "Traceback" not in err


def test_check_predictions_and_no_images_flags(salted_folder, capsys):
    code, out, _ = _check(capsys, str(salted_folder), "--no-images", "--predictions")
    assert code == 1
    assert "labels.jsonl:12:" not in out and "labels.jsonl:5:" not in out
    assert "labels.jsonl:3:" in out


def test_check_decode_flag_catches_what_the_cheap_check_does(salted_folder, capsys):
    code, out, _ = _check(capsys, str(salted_folder), "--decode")
    assert code == 1 and "labels.jsonl:6: image 'images/truncated.png': cannot decode" in out


# ----------------------------------------------------------------------------------------------
# load_image
# ----------------------------------------------------------------------------------------------


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with (almost) no pixel data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(8000, 7000), (100_000, 100_000)])
def test_decompression_bombs_are_refused_from_the_header(width, height):
    with pytest.raises(ImageError, match="decompression bomb"):
        load_image(_png_header_claiming(width, height))


def test_the_pixel_limit_is_configurable():
    with pytest.raises(ImageError, match="over the limit of 1,000 pixels"):
        load_image(_png_bytes(_white(40, 30)), max_pixels=1000)


def test_truncated_png_is_refused_everywhere(tmp_path):
    png = _png_bytes((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8))
    path = tmp_path / "t.png"
    path.write_bytes(png[: len(png) - 40])
    for call in (lambda: load_image(path), lambda: check_image(path), lambda: check_image(path, decode=True)):
        with pytest.raises(ImageError, match=r"t\.png: cannot decode"):
            call()


def test_truncated_jpeg_is_refused_by_the_cheap_check(tmp_path):
    out = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)).save(out, "JPEG")
    path = tmp_path / "t.jpg"
    path.write_bytes(out.getvalue()[: len(out.getvalue()) // 2])
    with pytest.raises(ImageError, match="cannot decode"):
        check_image(path)
    with pytest.raises(ImageError, match="cannot decode"):
        load_image(path)


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"GIF89a but not really", "unreadable|not an image"),
    (b"hello world", "not an image Pillow can read"),
])
def test_non_images_are_refused(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_missing_and_folder_paths_are_refused(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.png: file not found"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    values = np.array([[0, 257 * 100, 65535]], np.uint16)
    grey = load_image(_png_bytes(values))
    assert grey.dtype == np.uint8 and grey.tolist() == [[0, 100, 255]]


def test_rgba_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (0, 0, 0, 255)  # opaque black
    rgba[0, 1] = (0, 0, 0, 0)  # transparent black: paper
    rgba[1, 0] = (0, 0, 0, 128)  # half ink
    rgba[1, 1] = (255, 0, 0, 255)  # opaque red
    grey = load_image(_png_bytes(rgba))
    assert grey.shape == (2, 2)
    assert grey[0, 0] == 0 and grey[0, 1] == 255 and 120 <= grey[1, 0] <= 135
    assert grey[1, 1] == round(0.299 * 255)


def test_palette_with_transparency():
    image = Image.new("P", (3, 1))
    image.putpalette([0, 0, 0, 255, 255, 255, 0, 0, 255] + [0] * 759)
    image.putdata([0, 1, 2])
    out = io.BytesIO()
    image.save(out, "PNG", transparency=2)  # palette entry 2 (blue) is transparent
    assert load_image(out.getvalue()).tolist() == [[0, 255, 255]]


def test_colour_and_grey_alpha_and_bilevel():
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 1] = 255
    assert load_image(_png_bytes(rgb)).tolist() == [[0, 255]]
    la = Image.fromarray(np.array([[[0, 0], [0, 255]]], np.uint8), mode="LA")
    out = io.BytesIO()
    la.save(out, "PNG")
    assert load_image(out.getvalue()).tolist() == [[255, 0]]
    out = io.BytesIO()
    Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1").save(out, "PNG")
    assert load_image(out.getvalue()).tolist() == [[0, 255]]


def test_exif_orientation_is_applied(tmp_path):
    array = np.full((20, 40, 3), 255, np.uint8)
    array[:, :20] = 0  # left half black, as stored
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "phone.jpg"
    image.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    grey = load_image(path)
    assert grey.shape == (40, 20)  # upright: taller than wide
    assert grey[:15].mean() < 30 and grey[25:].mean() > 225  # the black half is now on top
    assert check_image(path) == (20, 40)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)
_fields = st.sampled_from(["type", "x", "y", "x1", "y1", "x2", "y2", "width", "height", "radius",
                           "start_angle", "end_angle", "points", "closed"])
_type_names = st.sampled_from(["line", "rectangle", "circle", "arc", "polyline"])
_primitive_like = st.dictionaries(_fields, _json_values | _type_names, max_size=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sheet=_json_values | st.fixed_dictionaries({"width": _json_values, "height": _json_values}),
       primitives=_json_values | st.lists(_primitive_like, max_size=3))
def test_arbitrary_json_is_reported_never_raised(tmp_path, sheet, primitives):
    folder = tmp_path / "fuzz"
    folder.mkdir(exist_ok=True)
    line = json.dumps({"image": "a.png", "sheet": sheet, "primitives": primitives})
    (folder / "labels.jsonl").write_text(line + "\n")
    records, problems = load_labels(folder, check_images=False)
    assert len(records) + len(problems) == 1
