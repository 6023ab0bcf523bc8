"""The helper scripts under scripts/ that read files only (no model, no rendering)."""

import json
import runpy
from pathlib import Path

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
