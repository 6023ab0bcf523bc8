"""`cad2program eval`: scoring a labelled folder with a tiny random model, report and predictions agreeing."""

from __future__ import annotations

import json
import shutil
import struct
import zlib

import pytest
from PIL import Image

from cad2program.cli import main
from cad2program.evaluation.scoring import score_files
from tiny_model import drawings_folder, tiny_model  # noqa: F401  (fixtures)

SCORE_KEYS = {"drawings", "f1", "precision", "recall", "size_exactness", "drawing_accuracy", "valid_rate",
              "per_type", "per_style", "tolerance"}


def evaluate(capsys, *argv) -> tuple[int, str, str]:
    code = main(["eval", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_eval_prints_the_table_and_writes_a_report_that_score_files_reproduces(capsys, tmp_path, tiny_model,
                                                                                drawings_folder):
    pred, report_path = tmp_path / "pred.jsonl", tmp_path / "report.json"
    code, out, _ = evaluate(capsys, "--data", drawings_folder, "--model", tiny_model, "--out", pred,
                            "--report", report_path, "--batch-size", 4)
    assert code == 0
    report = json.loads(report_path.read_text())
    assert SCORE_KEYS <= set(report) and {"timing", "model", "decoding", "data"} <= set(report)
    assert report["drawings"] == 4 and report["decoding"]["method"] == "greedy"
    assert set(report["per_style"]) == {"clean", "scan"}
    assert set(report["per_type"]) == {"line", "rectangle", "circle", "arc", "polyline"}
    assert report["timing"]["drawings"] == 4 and report["timing"]["ms_per_drawing"] > 0
    # The printed table: overall, per type, per style; and the time a drawing took.
    assert "F1" in out and "\npolyline" in out and "\nclean" in out and "\nscan" in out
    assert "ms a drawing" in out
    # The prediction file scores exactly as the command did.
    again = score_files(pred, drawings_folder)
    for key in ("drawings", "f1", "precision", "recall", "valid_rate", "drawing_accuracy", "per_style"):
        assert again[key] == report[key]


def test_eval_limit_and_skipped_lines_and_unreadable_images(capsys, tmp_path, tiny_model, drawings_folder):
    folder = tmp_path / "damaged"
    shutil.copytree(drawings_folder, folder)
    labels = (folder / "labels.jsonl").read_text().splitlines()
    first_image = folder / json.loads(labels[0])["image"]
    first_image.write_bytes(first_image.read_bytes()[:100])  # truncated
    bad_line = '{"image": 3, "sheet": {"width": 100, "height": 100}, "primitives": []}'
    (folder / "labels.jsonl").write_text("\n".join(labels + [bad_line]) + "\n")
    report_path = tmp_path / "r.json"
    code, _, err = evaluate(capsys, "--data", folder, "--model", tiny_model, "--report", report_path,
                            "--batch-size", 1, "--limit", 2)
    assert code == 1
    assert "labels.jsonl:5: 'image' must be a path" in err  # a bad label line is listed and skipped
    assert f"error: {first_image}: cannot decode" in err  # a bad image is scored as an empty prediction
    report = json.loads(report_path.read_text())
    assert report["drawings"] == 2 and report["unreadable_images"] == 1 and report["valid"] == 0


def test_eval_image_that_fails_to_decode_is_scored_empty_and_exit_1(capsys, tmp_path, tiny_model, drawings_folder):
    folder = tmp_path / "late"
    shutil.copytree(drawings_folder, folder)
    first = json.loads((folder / "labels.jsonl").read_text().splitlines()[0])
    path = folder / first["image"]
    # A PNG whose chunks check out but whose pixels are too few: only a full decode notices.
    Image.new("L", (8, 8)).save(path)
    data = path.read_bytes()
    ihdr = data.index(b"IHDR")
    header = bytearray(data[ihdr:ihdr + 17])
    header[4:8] = struct.pack(">I", 64)  # claims 64 px wide: the pixel data runs short
    data = data[:ihdr] + bytes(header) + struct.pack(">I", zlib.crc32(bytes(header))) + data[ihdr + 21:]
    path.write_bytes(data)
    report_path = tmp_path / "r.json"
    code, _, err = evaluate(capsys, "--data", folder, "--model", tiny_model, "--report", report_path,
                            "--batch-size", 1)
    report = json.loads(report_path.read_text())
    assert code == 1 and f"error: {path}" in err and "scored as an empty, invalid prediction" in err
    assert report["drawings"] == 4 and report["unreadable_images"] == 1


def test_eval_several_folders_prints_one_summary_row_each(capsys, tmp_path, tiny_model, drawings_folder):
    out_dir, report_path = tmp_path / "preds", tmp_path / "all.json"
    clean, scan = drawings_folder / "clean", drawings_folder / "scan"
    code, out, _ = evaluate(capsys, "--data", clean, scan, "--model", tiny_model, "--out", out_dir,
                            "--report", report_path, "--batch-size", 1)
    assert code == 0
    summary = out[out.index("dataset"):].splitlines()
    assert [row.split()[0] for row in summary[1:]] == ["clean", "scan", "all"]
    assert sorted(p.name for p in out_dir.iterdir()) == ["clean.jsonl", "scan.jsonl"]
    report = json.loads(report_path.read_text())
    assert set(report["datasets"]) == {"clean", "scan"} and report["combined"]["drawings"] == 4


def test_eval_missing_folder_is_a_clear_error(capsys, tmp_path):
    code, _, err = evaluate(capsys, "--data", tmp_path / "nope")
    assert code == 2 and "does not exist" in err


@pytest.mark.parametrize("flag", ["--limit=0", "--beam=0", "--batch-size=x"])
def test_eval_bad_numbers_are_usage_errors(capsys, tmp_path, flag):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--data", str(tmp_path), flag])
    assert exit_info.value.code == 2


def test_eval_geometry_only_scores_sides_and_no_sizes(capsys, tmp_path, tiny_model, drawings_folder):
    report_path = tmp_path / "report.json"
    code, out, _ = evaluate(capsys, "--data", drawings_folder, "--model", tiny_model, "--geometry-only",
                            "--report", report_path, "--limit", 2)
    assert code == 0
    report = json.loads(report_path.read_text())
    assert report["geometry_only"] is True and report["size_exactness"] is None
    assert not {"rectangle", "polyline"} & set(report["per_type"])  # counted as their sides
