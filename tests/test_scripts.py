"""The helper scripts under scripts/ (those that read a model use the random tiny one)."""

import json
import runpy
from pathlib import Path

import pytest
from tiny_model import tiny_model  # noqa: F401  (fixture)

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_learning_curve_averages_the_training_rows_between_evaluations(tmp_path, capsys):
    train = [{"step": 10, "loss": 4.0, "token_accuracy": 0.2}, {"step": 20, "loss": 3.0, "token_accuracy": 0.3},
             {"step": 30, "loss": 2.0, "token_accuracy": 0.4}]
    evals = [{"step": 20, "examples_seen": 640, "f1": 0.5, "f1_circle": 0.25, "size_exactness": 0.1,
              "valid_rate": 1.0},
             {"step": 30, "examples_seen": 960, "f1": 0.75, "size_exactness": 0.2, "valid_rate": 0.9}]
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train) + '{"step": 4')
    (tmp_path / "eval_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    curve_table = runpy.run_path(str(SCRIPTS / "learning_curve.py"))["curve_table"]
    header, rule, first, second = curve_table(tmp_path, offset_drawings=1000).splitlines()
    assert header.count("|") == rule.count("|") == first.count("|")
    assert first.startswith("| 20 | 1,640 | 3.50 | – | 0.25 | 0.500 | 0.000 | 0.000 | 0.250 |")
    assert second.startswith("| 30 | 1,960 | 2.00 | – | 0.40 | 0.750 |") and second.endswith("| 0.20 | 0.90 |")
    assert "train_log.jsonl:4: not JSON" in capsys.readouterr().err  # a line cut short is named and skipped


def test_confidence_bands_give_the_precision_of_each_band(tmp_path, capsys):
    truth = tmp_path / "clean"
    truth.mkdir()
    circle = {"type": "circle", "x": 50, "y": 50, "radius": 10}
    far_circle = {"type": "circle", "x": 150, "y": 20, "radius": 10}
    (truth / "labels.jsonl").write_text(
        json.dumps({"image": "images/a.png", "sheet": {"width": 200, "height": 100}, "primitives": [circle]}) + "\n"
        + json.dumps({"image": "images/b.png", "sheet": {"width": 200, "height": 100}, "primitives": [circle]}) + "\n")
    predictions = tmp_path / "preds"
    predictions.mkdir()
    (predictions / "clean.jsonl").write_text(
        json.dumps({"image": "images/a.png", "primitives": [circle, far_circle], "confidences": [0.95, 0.05]}) + "\n"
        + json.dumps({"image": "images/b.png", "primitives": [far_circle], "confidences": [0.92]}) + "\n")
    script = runpy.run_path(str(SCRIPTS / "confidence_bands.py"))
    assert script["main"]([str(predictions), str(truth)]) == 0
    out = capsys.readouterr().out
    assert "| 0.0–0.1 | 1 | 0 | 0.05 | 0.00 |" in out  # the unsure wrong one
    assert "| 0.9–1.0 | 2 | 1 | 0.94 | 0.50 |" in out  # one sure and right, one sure and wrong
    # |0.05 - 0| * 1 + |0.935 - 0.5| * 2, over 3 primitives
    assert "3 primitives, expected calibration error 0.307" in out


def test_miss_breakdown_counts_unwritten_lines_unreadable_polylines_and_exact_sizes(tmp_path, capsys):
    truth = tmp_path / "clean"
    truth.mkdir()
    line = {"type": "line", "x1": 10, "y1": 10, "x2": 60, "y2": 10}
    misplaced = {"type": "line", "x1": 10, "y1": 20, "x2": 60, "y2": 20}
    segment = {"type": "polyline", "points": [[100, 50], [150, 50]], "closed": False}
    straightish = {"type": "polyline", "points": [[100, 80], [130, 80], [160, 81], [160, 95]], "closed": False}
    rect = {"type": "rectangle", "x": 120, "y": 10, "width": 30, "height": 20}
    (truth / "labels.jsonl").write_text(json.dumps({
        "image": "images/a.png", "sheet": {"width": 200, "height": 100},
        "primitives": [line, misplaced, segment, straightish, rect]}) + "\n")
    predictions = tmp_path / "preds"
    predictions.mkdir()
    wrote = [{**misplaced, "y1": 26, "y2": 26}, {**rect, "width": 31},  # a line 6 mm off (t = 4); width misread
             {"type": "line", "x1": 101, "y1": 51, "x2": 149, "y2": 50},  # the segment polyline, written as a line
             {"type": "line", "x1": 10, "y1": 90, "x2": 20, "y2": 90},  # where nothing is drawn
             {"type": "line", "x1": 10, "y1": 10, "x2": 30, "y2": 10},  # part of the first line only
             {"type": "line", "x1": 160, "y1": 81, "x2": 160, "y2": 95}]  # one side of the straightish polyline
    (predictions / "clean.jsonl").write_text(json.dumps({"image": "images/a.png", "primitives": wrote}) + "\n")
    script = runpy.run_path(str(SCRIPTS / "miss_breakdown.py"))
    assert script["main"]([str(predictions), str(truth)]) == 0
    out = capsys.readouterr().out
    assert "| rectangle | height | 1 | 1 | 1.00 |" in out and "| rectangle | width | 0 | 1 | 0.00 |" in out
    assert "unmatched true lines: 2; with no predicted line within 3 tolerances (never written): 1" in out
    assert ("true polylines: 2; two points (drawn as a line is): 1 (1 unmatched); a corner turning < 10 degrees: 1 "
            "(1 unmatched)") in out
    assert "unmatched true primitives: 2 line, 2 polyline" in out and "unmatched predictions: 5 line" in out
    assert ("unmatched predicted lines: along an unmatched two-point polyline: 1; along another unmatched polyline: 1; "
            "along another true primitive: 1; on none: 2") in out
    assert script["main"]([str(tmp_path / "nowhere"), str(truth)]) == 2  # a wrong folder: said, no traceback
    assert "error: prediction file" in capsys.readouterr().err
    # eval --out with one labelled folder writes one file: that file, given as it is, counts the same
    assert script["main"]([str(predictions / "clean.jsonl"), str(truth)]) == 0
    assert capsys.readouterr().out == out
    assert script["main"]([str(predictions / "clean.jsonl"), str(truth), str(truth)]) == 2
    assert "one prediction file" in capsys.readouterr().err


def test_ink_spread_measures_small_residuals_on_held_out_drawings(capsys):
    script = runpy.run_path(str(SCRIPTS / "ink_spread.py"))
    # scattered drawings: on part-like ones arcs that meet lines stray further (see docs/battery.md)
    assert script["main"](["--drawings", "12", "--part-share", "0"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert "Rectangle" in rows or "Circle" in rows
    for name, row in rows.items():  # re-measured sizes stray by a pixel or two, not by tens
        assert int(row[1]) > 0 and abs(float(row[2])) < 2 and float(row[4]) < 2, row


def test_reading_weight_scores_a_folder_at_each_weight_and_ocr_bonus(tmp_path, capsys, monkeypatch):
    import cad2program.reading.recognizer as recognizer
    from cad2program.cli import main as cli

    data = tmp_path / "data"
    assert cli(["generate", "--out", str(data), "--count", "2", "--seed", "5", "--size", "256", "--workers", "1"]) == 0
    capsys.readouterr()
    for name in ("DEFAULT_SETTINGS", "written_numbers"):  # the script sets them: put them back after
        monkeypatch.setattr(recognizer, name, getattr(recognizer, name))
    script = runpy.run_path(str(SCRIPTS / "reading_weight.py"))
    assert script["main"]([str(data), "1.0", "0.3", "--bonus", "0", "8"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines()
            if line.startswith("| 1.0 ") or line.startswith("| 0.3 ")]
    assert [(float(r[0]), float(r[1])) for r in rows] == [(1.0, 0.0), (1.0, 8.0), (0.3, 0.0), (0.3, 8.0)]
    assert {float(r[2]) for r in rows} == {recognizer.DEFAULT_SETTINGS.distance_weight}
    assert all(0 <= float(row[5]) <= 1 for row in rows)  # F1, always defined


def test_sheet_from_numbers_scores_both_ways_of_getting_a_sheet(capsys):
    script = runpy.run_path(str(SCRIPTS / "sheet_from_numbers.py"))
    clean = Path(__file__).parent.parent / "testsets" / "clean"
    assert script["main"](["2", str(clean)]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| clean ")]
    assert len(rows) == 2 and "assumed" in rows[0][1] and "numbers" in rows[1][1]
    assert all(0 <= float(row[3]) <= 1 and row[2].strip().endswith("of 2") for row in rows)


def test_ocr_recall_counts_the_true_sizes_read(capsys):
    from cad2program.reading import ocr

    if not ocr.available():
        pytest.skip("rapidocr_onnxruntime is not installed")
    script = runpy.run_path(str(SCRIPTS / "ocr_recall.py"))
    clean = Path(__file__).parent.parent / "testsets" / "clean"
    assert script["main"](["2", str(clean)]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| clean ")]
    assert [row[1].strip() for row in rows] == ["ink", "detector"]  # both finders, side by side
    for row in rows:  # folder, finder, recogniser width, sizes read, of, recall, other values, s / drawing
        assert int(row[2]) == ocr.RECOGNITION_MIN_WIDTH
        assert 0 < int(row[3]) <= int(row[4]) and float(row[5]) >= 0.7 and int(row[6]) >= 0


def test_second_look_scores_each_threshold_and_leaves_out_an_unreadable_image(tmp_path, capsys):
    import shutil

    clean = Path(__file__).parent.parent / "testsets" / "clean"
    lines = (clean / "labels.jsonl").read_text().splitlines()[:3]
    (tmp_path / "images").mkdir()
    for line in lines:
        name = json.loads(line)["image"]
        shutil.copy(clean / name, tmp_path / name)
    broken = json.loads(lines[0])
    broken["image"] = "images/broken.png"
    (tmp_path / "images" / "broken.png").write_bytes((clean / json.loads(lines[0])["image"]).read_bytes()[:300])
    (tmp_path / "labels.jsonl").write_text("\n".join(lines + [json.dumps(broken)]) + "\n")
    script = runpy.run_path(str(SCRIPTS / "second_look.py"))
    assert script["main"]([str(tmp_path), "--no-ocr", "--thresholds", "-1000000", "-17.5",
                           "--alone-bonus", "0", "30"]) == 0
    captured = capsys.readouterr()
    assert "labels.jsonl:4" in captured.err and "broken.png" in captured.err  # said, and the rest still read
    rows = {tuple(cell.strip() for cell in line.split("|")[1:3]): line.split("|")[3:-1]
            for line in captured.out.splitlines() if line.startswith("| ") and not line.startswith(("| threshold", "| ---"))}
    assert set(rows) == {("off", "–"), ("-1e+06", "0"), ("-1e+06", "30"), ("-17.5", "0"), ("-17.5", "30")}
    added = {key: int(row[3]) for key, row in rows.items()}
    assert added[("off", "–")] == 0 and added[("-1e+06", "0")] >= added[("-17.5", "0")]  # all candidates added
    assert added[("-17.5", "30")] >= added[("-17.5", "0")]  # a bonus only ever adds
    assert all(int(row[4]) <= int(row[3]) for row in rows.values())


def test_confidence_floor_drops_the_primitives_under_each_floor_before_scoring(tmp_path, capsys):
    truth = tmp_path / "hand" / "dev"
    truth.mkdir(parents=True)
    circle = {"type": "circle", "x": 50, "y": 50, "radius": 10}
    far_circle = {"type": "circle", "x": 150, "y": 20, "radius": 10}
    (truth / "labels.jsonl").write_text(
        json.dumps({"image": "images/a.png", "sheet": {"width": 200, "height": 100}, "primitives": [circle]}) + "\n")
    predictions = tmp_path / "preds"
    predictions.mkdir()
    (predictions / "hand-dev.jsonl").write_text(  # as eval_battery.py --predictions names it
        json.dumps({"image": "images/a.png", "primitives": [circle, far_circle], "confidences": [0.9, 0.2]}) + "\n")
    script = runpy.run_path(str(SCRIPTS / "confidence_floor.py"))
    assert script["main"]([str(predictions), str(truth), "--floors", "0", "0.5", "0.95"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [["0.00", "0.667", "0.667", "0.667"], ["0.50", "1.000", "1.000", "1.000"],
                    ["0.95", "0.000", "0.000", "0.000"]]


def test_sweep_setting_reads_once_and_scores_each_value_of_a_late_stage(tmp_path, capsys, tiny_model):
    import shutil

    clean = Path(__file__).parent.parent / "testsets" / "clean"
    lines = (clean / "labels.jsonl").read_text().splitlines()[:2]
    (tmp_path / "images").mkdir()
    for line in lines:
        shutil.copy(clean / json.loads(line)["image"], tmp_path / json.loads(line)["image"])
    (tmp_path / "labels.jsonl").write_text("\n".join(lines) + "\n")
    script = runpy.run_path(str(SCRIPTS / "sweep_setting.py"))
    assert script["main"]([str(tmp_path), "--model", str(tiny_model), "--setting", "repeat_circle_inked",
                           "--values", "2", "0.95", "--from-stage", "repeat circles"]) == 0
    header, off, on = capsys.readouterr().out.splitlines()
    assert header.split()[0] == "repeat_circle_inked" and off.split()[0] == "2" and on.split()[0] == "0.95"
    assert len(off.split()) == len(on.split()) == 4  # the value, one set's F1, worst and mean
    with pytest.raises(SystemExit):
        script["main"]([str(tmp_path), "--model", str(tiny_model), "--setting", "no_such_setting",
                        "--values", "1"])


def test_stage_times_times_every_stage_of_each_drawing(capsys, tiny_model):
    clean = Path(__file__).parent.parent / "testsets" / "clean"
    script = runpy.run_path(str(Path(__file__).parent.parent / "benchmarks" / "stage_times.py"))
    assert script["main"]([str(clean), "--count", "2", "--model", str(tiny_model), "--no-warm-up"]) == 0
    report = json.loads(capsys.readouterr().out)
    from cad2program.reading import Recognizer

    names = ["prepare", "ink"] + [stage.name for stage in Recognizer.load(tiny_model).stages]
    for summary in (report["folders"][str(clean)], report["all"]):
        assert summary["drawings"] == 2 and list(summary["stages"]) == names
        assert abs(sum(s["share"] for s in summary["stages"].values()) - 1) < 0.01
        assert summary["total_p90_ms"] >= summary["total_median_ms"] > 0
