"""The foreign battery: its part generator keeps the contract, and eval_battery scores every set in one table."""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from cad2program.contract.program import Arc, Circle, Line, Rectangle, Sheet, primitives_from_json, program_problems
from tiny_model import drawings_folder, tiny_model  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts" / "battery"))
sys.path.insert(0, str(REPO / "scripts"))

import parts  # noqa: E402


def _end_points(primitive):
    if isinstance(primitive, Line):
        return [(primitive.x1, primitive.y1), (primitive.x2, primitive.y2)]
    return [(primitive.x + primitive.radius * math.cos(math.radians(a)),
             primitive.y + primitive.radius * math.sin(math.radians(a)))
            for a in (primitive.start_angle, primitive.end_angle)]


def _point_on(primitive):
    if isinstance(primitive, (Line, Arc)):
        return _end_points(primitive)[0]
    if isinstance(primitive, Circle):
        return primitive.x + primitive.radius, primitive.y
    if isinstance(primitive, Rectangle):
        return primitive.x, primitive.y
    return primitive.points[0]


def test_parts_are_contract_labels_and_the_same_for_the_same_seed():
    families = set()
    for seed in range(120):
        part = parts.make_part(seed)
        families.add(part.family)
        label = part.label("images/x.png")
        assert json.dumps(label) == json.dumps(parts.make_part(seed).label("images/x.png"))
        primitives = primitives_from_json(label["primitives"])
        sheet = Sheet.from_json(label["sheet"])
        assert 1 <= len(primitives) <= 12 and not program_problems(primitives, sheet)
        assert not sheet.in_scope_problems()
        # every dimension's value is a value of the truth, so the annotation gives the label's size
        for d in part.dimensions:
            assert d.value > 0
        # arcs meet lines at shared end points (fillets, slots): each arc end lies on a line's end
        lines = [p for p in primitives if isinstance(p, Line)]
        for arc in (p for p in primitives if isinstance(p, Arc)):
            if lines:
                for x, y in _end_points(arc):
                    assert min(math.hypot(x - a, y - b) for line in lines for a, b in _end_points(line)) < 0.15
    assert families == set(parts.FAMILIES)


def test_unannotated_primitives_are_marked_in_the_label():
    marked = sum(p.get("annotated") is False for seed in range(60) for p in parts.make_part(seed).label("x")["primitives"])
    assert marked > 0


def test_eval_battery_scores_every_set_and_real_sets_geometry_only(tmp_path, capsys, tiny_model, drawings_folder):
    import eval_battery

    battery = tmp_path / "battery"
    for name in ("some-set", "real-drawn"):
        shutil.copytree(drawings_folder, battery / name / "dev")
    (battery / "half-only").mkdir()  # no dev half: left out with a warning
    report = tmp_path / "battery.json"
    code = eval_battery.main(["--battery", str(battery), "--no-own", "--model", str(tiny_model), "--limit", "2",
                              "--report", str(report)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "some-set/dev" in out and "real-drawn/dev *" in out and "battery worst" in out and "battery mean" in out
    assert "half-only" in err
    rows = {row["set"]: row for row in json.loads(report.read_text())["rows"]}
    assert rows["real-drawn/dev"]["geometry_only"] and rows["real-drawn/dev"]["size_exactness"] is None
    assert rows["some-set/dev"]["drawings"] == 2
    worst = min(rows["some-set/dev"]["f1"], rows["real-drawn/dev"]["f1"])
    assert rows["battery worst"]["f1"] == worst


def test_eval_battery_refuses_arguments_it_sets(tmp_path, capsys):
    import eval_battery

    with pytest.raises(SystemExit):
        eval_battery.main(["--battery", str(tmp_path), "--out", "x"])
    assert "--out" in capsys.readouterr().err


def test_hand_and_photo_renderers_draw_exactly_the_sheet_with_ink_on_the_primitives():
    import io
    import random

    import numpy as np
    from PIL import Image

    import render_hand
    import render_photo

    part = parts.make_part(7)
    image = render_hand.draw_part(part, random.Random(1), longer_side_px=400)
    height, width = image.shape
    assert abs(width / height - part.sheet.width / part.sheet.height) < 0.01 and max(width, height) == 400
    # ink near a point of every primitive (the pen wobbles, but not by 2% of the sheet)
    for primitive in part.primitives:
        x, y = _point_on(primitive)
        col, row = int(x / part.sheet.width * width), int((1 - y / part.sheet.height) * height)
        assert image[max(0, row - 6):row + 7, max(0, col - 6):col + 7].min() < 160, primitive
    x, y = _point_on(part.primitives[0])
    col, row = int(x / part.sheet.width * width), int((1 - y / part.sheet.height) * height)
    assert image[max(0, row - 6):row + 7, max(0, col - 6):col + 7].min() < 128 and np.median(image) > 240
    photo = Image.open(io.BytesIO(render_photo.photograph(image, seed=3)))
    assert photo.format == "JPEG" and photo.size == (width, height) and photo.mode == "RGB"


def test_the_table_keeps_a_blank_line_between_the_battery_and_the_own_sets():
    import eval_battery

    row = {"set": "parts-x/dev", "drawings": 50, "f1": 0.5, "size_exactness": None, "drawing_accuracy": 0.1,
           "geometry_only": True, **{t: None for t in eval_battery.TYPES}}
    lines = eval_battery.format_table([row, None, dict(row, set="own (all four)", geometry_only=False, f1=0.9)]).splitlines()
    assert lines[2].startswith("parts-x/dev *") and "0.500" in lines[2] and lines[3] == ""
    assert lines[4].startswith("own (all four)") and "0.900" in lines[4]
