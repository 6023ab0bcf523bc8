"""Labels name only files inside their dataset folder; arcs may be centred off the sheet (contract 1.1);
`predict` on a dataset folder reads every image it may open, whatever its label holds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cad2program.cli import main
from cad2program.contract.dataset import image_key_problem, load_labels
from cad2program.contract.program import Arc, Sheet, program_problems
from tiny_model import tiny_model  # noqa: F401  (fixture)

SHEET = {"width": 200, "height": 150}
CIRCLE = {"type": "circle", "x": 30, "y": 20, "radius": 5}
# Centred 50 mm below the sheet; from 60 to 120 degrees it stays between y = 25 and y = 30: on the sheet.
ARC_CENTRED_OFF_SHEET = {"type": "arc", "x": 100, "y": -50, "radius": 80, "start_angle": 60, "end_angle": 120}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([*map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_png(path, width=120, height=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((height, width), 255, np.uint8)
    array[30:60, 30:80] = 0
    Image.fromarray(array).save(path)
    return path


def write_labels(folder, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


@pytest.fixture
def escaping_folder(tmp_path):
    """A dataset folder whose labels name a file beside the folder and an absolute path."""
    secret = write_png(tmp_path / "secret.png")
    folder = tmp_path / "set"
    write_png(folder / "images" / "a.png")
    return write_labels(folder, [
        {"image": "images/a.png", "sheet": SHEET, "primitives": [CIRCLE]},
        {"image": "../secret.png", "sheet": SHEET, "primitives": [CIRCLE]},
        {"image": str(secret), "sheet": SHEET, "primitives": [CIRCLE]},
    ])


def test_check_refuses_labels_that_name_files_outside_the_folder(capsys, escaping_folder):
    code, out, _ = run(capsys, "check", escaping_folder)
    assert code == 1
    assert "labels.jsonl:2: image '../secret.png' lies outside the dataset folder" in out
    assert "labels.jsonl:3: image '" in out and "is an absolute path" in out
    records, problems = load_labels(escaping_folder)  # what train and eval load
    assert [r.image_key for r in records] == ["images/a.png"] and [p.line_number for p in problems] == [2, 3]


@pytest.mark.parametrize("key, allowed", [("images/a.png", True), ("images/../b.png", True), ("./a.png", True),
                                          ("../a.png", False), ("images/../../a.png", False), ("/etc/hostname", False),
                                          ("C:/x.png", False), ("\\\\server\\x.png", False), ("a\x00.png", False),
                                          ("", False), (3, False)])
def test_the_image_path_rule(key, allowed):
    assert (image_key_problem(key) is None) == allowed


def test_predict_and_eval_never_open_a_file_outside_the_folder(capsys, escaping_folder, tiny_model):
    code, out, err = run(capsys, "predict", escaping_folder, "--model", tiny_model, "--batch-size", 1)
    assert code == 1
    assert [json.loads(line)["image"] for line in out.splitlines()] == ["images/a.png"]
    assert "labels.jsonl:2: image '../secret.png' lies outside the dataset folder" in err
    assert "labels.jsonl:3:" in err and "absolute path" in err
    code, out, err = run(capsys, "eval", "--data", escaping_folder, "--model", tiny_model, "--batch-size", 1)
    assert "labels.jsonl:2: image '../secret.png' lies outside" in err and "secret.png:" not in err.replace(
        "'../secret.png'", "")


def test_an_arc_centred_off_the_sheet_is_a_good_label_and_one_off_the_sheet_is_not():
    sheet = Sheet(200, 150)
    assert program_problems([Arc(**{k: v for k, v in ARC_CENTRED_OFF_SHEET.items() if k != "type"})], sheet) == []
    # Centred off the sheet, the same circle's upper half ends below it (y = -50 at 0 and 180 degrees).
    half = Arc(100, -50, 80, 0, 180)
    assert program_problems([half], sheet) and "outside" in program_problems([half], sheet)[0]
    # Centred above the sheet, ends on it (y = 25), but its lowest point (270 degrees) is at y = -5.
    under = Arc(100, 160, 165, 235, 305)
    assert "outside" in program_problems([under], sheet)[0]
    # An arc centred on the sheet stays valid as before, even where it strays over the edge.
    assert program_problems([Arc(10, 10, 30, 90, 270)], sheet) == []


def test_check_accepts_an_arc_centred_off_the_sheet(capsys, tmp_path):
    folder = tmp_path / "arcs"
    write_png(folder / "a.png", 200, 150)
    write_labels(folder, [{"image": "a.png", "sheet": SHEET, "primitives": [ARC_CENTRED_OFF_SHEET]}])
    code, out, _ = run(capsys, "check", folder)
    assert code == 0, out


def test_predict_reads_every_image_and_reports_a_bad_label_beside_its_prediction(capsys, tmp_path, tiny_model):
    folder = tmp_path / "set"
    for name in ("a.png", "b.png", "c.png", "d.png"):
        write_png(folder / name)
    write_labels(folder, [
        {"image": "a.png", "sheet": SHEET, "primitives": [CIRCLE]},
        {"image": "b.png", "sheet": SHEET, "primitives": [ARC_CENTRED_OFF_SHEET]},  # good since contract 1.1
        {"image": "c.png", "sheet": SHEET, "primitives": [{"type": "circle", "x": 30, "y": 20, "radius": 0}]},
        {"image": "d.png", "sheet": {"width": -5, "height": 150}},  # a sheet it cannot use: inferred instead
    ])
    code, out, err = run(capsys, "predict", folder, "--model", tiny_model, "--batch-size", 1)
    assert code == 0, err
    lines = {json.loads(line)["image"]: json.loads(line) for line in out.splitlines()}
    assert sorted(lines) == ["a.png", "b.png", "c.png", "d.png"]
    assert "label_problem" not in lines["a.png"] and "label_problem" not in lines["b.png"]
    assert lines["b.png"]["sheet"] == SHEET
    assert "labels.jsonl:3:" in lines["c.png"]["label_problem"] and "radius must be > 0" in lines["c.png"]["label_problem"]
    assert lines["c.png"]["sheet"] == SHEET  # the label's sheet is still good
    assert "labels.jsonl:4: bad sheet" in lines["d.png"]["label_problem"]
    assert lines["d.png"]["sheet"]["width"] == 297  # inferred from the 4:3 image
    assert "warning:" in err and "read all the same" in err and "Traceback" not in err
