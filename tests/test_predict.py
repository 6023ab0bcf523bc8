"""`cad2program predict`: images and folders to programs, JSON lines, DXF and overlays, with a tiny random model.

The model is random, so the tests check the form of the outputs and the handling of inputs, not what
is recognised. Every run uses --batch-size 1 unless batching is the point, so one compilation serves all.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cad2program.cli import main
from cad2program.contract.program_text import parse_program
from cad2program.evaluation.scoring import score_files
from tiny_model import drawings_folder, tiny_model  # noqa: F401  (fixtures)


def predict(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_image(path, width=120, height=80, mode="RGB", suffix_format="PNG"):
    rng = np.random.default_rng(width * height)
    array = np.full((height, width, 3), 255, np.uint8)
    array[height // 4: height // 2, width // 4: width // 2] = rng.integers(0, 80, 3)  # a dark block
    Image.fromarray(array).convert(mode).save(path, suffix_format)
    return path


def test_single_image_prints_its_program_and_says_the_sheet_was_inferred(capsys, tmp_path, tiny_model):
    image = write_image(tmp_path / "part.png", 300, 150)
    code, out, err = predict(capsys, image, "--model", tiny_model, "--batch-size", 1)
    assert code == 0
    assert not out.startswith("#")  # one image: no header line
    parse_program(out)  # whatever the random model read, it is printed as a parseable program
    assert err.count("longer side is taken as 297 mm") == 1


def test_single_image_json_has_the_prediction_fields_and_a_sheet_from_the_aspect_ratio(capsys, tmp_path, tiny_model):
    image = write_image(tmp_path / "tall.jpg", 100, 200, mode="L", suffix_format="JPEG")  # grey JPEG, portrait
    code, out, _ = predict(capsys, image, "--model", tiny_model, "--format", "json", "--batch-size", 1)
    assert code == 0
    line = json.loads(out)
    assert line["image"] == str(image)
    assert line["sheet"] == {"width": 148, "height": 297}  # longer side 297 mm, 1:2 aspect
    assert set(line) >= {"primitives", "program", "confidences", "valid", "problems"}
    assert len(line["confidences"]) == len(parse_program(line["program"]))
    assert all(0 <= c <= 1 for c in line["confidences"])
    # Primitives only when the output is valid; otherwise null, with the reasons.
    assert (line["primitives"] is not None) == line["valid"] and line["valid"] == (not line["problems"])


def test_sheet_flag_applies_to_every_image_and_several_images_get_headers(capsys, tmp_path, tiny_model):
    a, b = write_image(tmp_path / "a.png"), write_image(tmp_path / "b.png", 90, 90)
    code, out, err = predict(capsys, a, b, "--model", tiny_model, "--sheet", "200x150", "--batch-size", 1)
    assert code == 0 and "297 mm" not in err
    assert [l for l in out.splitlines() if l.startswith("# ")] == [f"# {a}", f"# {b}"]
    code, out, _ = predict(capsys, a, b, "--model", tiny_model, "--sheet", "200x150", "--format", "jsonl",
                           "--batch-size", 1)
    lines = [json.loads(l) for l in out.splitlines()]
    assert [l["image"] for l in lines] == [str(a), str(b)]
    assert all(l["sheet"] == {"width": 200, "height": 150} for l in lines)


@pytest.mark.parametrize("text, why", [("200", "expected WIDTHxHEIGHT"), ("200x", "expected WIDTHxHEIGHT"),
                                       ("ax150", "expected WIDTHxHEIGHT"), ("200x150x3", "expected WIDTHxHEIGHT"),
                                       ("0x150", "must be > 0"), ("-5x10", "expected WIDTHxHEIGHT")])
def test_bad_sheet_is_a_clear_usage_error(capsys, tmp_path, text, why):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", str(tmp_path / "x.png"), f"--sheet={text}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --sheet" in err and why in err


def test_out_of_scope_sheet_is_read_with_a_warning(capsys, tmp_path, tiny_model):
    image = write_image(tmp_path / "a.png")
    code, _, err = predict(capsys, image, "--model", tiny_model, "--sheet", "900x100", "--batch-size", 1)
    assert code == 0 and "warning: --sheet" in err and "outside 50..500 mm" in err


def test_labelled_folder_gives_prediction_lines_that_score_files_pairs_with_the_labels(capsys, tmp_path, tiny_model,
                                                                                       drawings_folder):
    out = tmp_path / "pred.jsonl"
    code, stdout, err = predict(capsys, drawings_folder, "--model", tiny_model, "--out", out, "--batch-size", 4)
    assert code == 0 and stdout == "" and "297 mm" not in err  # sheets come from the labels
    labels = [json.loads(l) for l in (drawings_folder / "labels.jsonl").read_text().splitlines()]
    lines = [json.loads(l) for l in out.read_text().splitlines()]
    assert [l["image"] for l in lines] == [l["image"] for l in labels]
    assert [l["sheet"] for l in lines] == [l["sheet"] for l in labels]
    report = score_files(out, drawings_folder)
    assert report["drawings"] == 4
    # Every drawing has its prediction (no "no prediction for ..."); invalid ones are scored as such.
    assert not [p for p in report["problems"] if "no prediction" in p or "no such image" in p]
    assert report["valid"] == sum(l["valid"] for l in lines)


def test_labelled_folder_to_stdout_is_jsonl_and_labels_without_primitives_are_enough(capsys, tmp_path, tiny_model,
                                                                                       drawings_folder):
    folder = tmp_path / "unlabelled"
    shutil.copytree(drawings_folder, folder)
    stripped = []
    for text in (folder / "labels.jsonl").read_text().splitlines():
        obj = json.loads(text)
        del obj["primitives"]  # a folder to predict on: image and sheet only
        stripped.append(json.dumps(obj))
    (folder / "labels.jsonl").write_text("\n".join(stripped) + "\n")
    code, out, _ = predict(capsys, folder, "--model", tiny_model, "--batch-size", 1)
    assert code == 0
    assert [json.loads(l)["image"] for l in out.splitlines()] == [json.loads(t)["image"] for t in stripped]


def test_folder_without_labels_reads_every_image_sorted(capsys, tmp_path, tiny_model):
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.png", "a.jpg", "sub/c.png"):
        write_image(folder / name, suffix_format="JPEG" if name.endswith("jpg") else "PNG")
    (folder / "notes.txt").write_text("not an image")
    code, out, err = predict(capsys, folder, "--model", tiny_model, "--batch-size", 1)
    assert code == 0 and "297 mm" in err
    assert [json.loads(l)["image"] for l in out.splitlines()] == ["a.jpg", "b.png", "sub/c.png"]


def test_corrupt_image_gets_an_error_line_and_the_others_are_still_read(capsys, tmp_path, tiny_model):
    good_a, good_b = write_image(tmp_path / "a.png"), write_image(tmp_path / "c.png")
    data = (good_a).read_bytes()
    broken = tmp_path / "b.png"
    broken.write_bytes(data[: len(data) // 2])  # truncated
    code, out, err = predict(capsys, good_a, broken, good_b, tmp_path / "missing.png", "--model", tiny_model,
                             "--format", "jsonl", "--batch-size", 1)
    assert code == 1
    assert [json.loads(l)["image"] for l in out.splitlines()] == [str(good_a), str(good_b)]
    assert f"error: {broken}: cannot decode (truncated or corrupt file)" in err
    assert f"error: {tmp_path / 'missing.png'}: file not found" in err
    assert "Traceback" not in err


def test_bad_label_line_is_an_error_and_the_rest_are_predicted(capsys, tmp_path, tiny_model, drawings_folder):
    folder = tmp_path / "bad"
    shutil.copytree(drawings_folder, folder)
    with open(folder / "labels.jsonl", "a") as labels:
        labels.write('{"image": "nowhere.png"}\n')
    code, out, err = predict(capsys, folder, "--model", tiny_model, "--batch-size", 1)
    assert code == 1
    assert len(out.splitlines()) == 4
    assert "labels.jsonl:5: missing key 'sheet'" in err


def test_dxf_svg_and_png_for_one_image(capsys, tmp_path, tiny_model):
    image = write_image(tmp_path / "part.png", 200, 100)
    for fmt in ("dxf", "svg", "png"):
        out = tmp_path / f"result.{fmt}"
        code, stdout, _ = predict(capsys, image, "--model", tiny_model, "--out", out, "--batch-size", 1)  # format from suffix
        assert code == 0 and f"wrote {out}" in stdout
        data = out.read_bytes()
        if fmt == "dxf":
            import ezdxf
            doc = ezdxf.read(io.StringIO(data.decode("ascii", errors="replace")))
            assert "GEOMETRY" in [layer.dxf.name for layer in doc.layers]
        elif fmt == "svg":
            assert data.lstrip().startswith(b"<svg") or b"<svg" in data[:300]
        else:
            assert Image.open(io.BytesIO(data)).size == (200, 100)  # the overlay is at the input's size


def test_file_formats_for_several_images_go_to_a_folder_and_need_out(capsys, tmp_path, tiny_model):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = write_image(tmp_path / "x" / "part.png"), write_image(tmp_path / "y" / "part.png")
    out = tmp_path / "overlays"
    code, _, _ = predict(capsys, a, b, "--model", tiny_model, "--format", "png", "--out", out, "--batch-size", 1)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["part.png", "part_2.png"]  # same names do not collide
    code, _, err = predict(capsys, a, "--model", tiny_model, "--format", "dxf")
    assert code == 2 and "--format dxf needs --out" in err


def test_missing_model_is_a_clear_error(capsys, tmp_path):
    image = write_image(tmp_path / "a.png")
    code, _, err = predict(capsys, image, "--model", tmp_path / "none.msgpack")
    assert code == 2 and "model file not found" in err


def test_beam_search_gives_a_program_too(capsys, tmp_path, tiny_model):
    image = write_image(tmp_path / "a.png")
    code, out, _ = predict(capsys, image, "--model", tiny_model, "--beam", "2", "--format", "json",
                           "--batch-size", 1, "--sheet", "100x100")
    assert code == 0 and json.loads(out)["sheet"] == {"width": 100, "height": 100}
