"""The synthetic drawing generator: determinism, valid labels, annotations that tell the truth."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cad2program.contract.program import (Arc, Circle, Line, Polyline, Rectangle, format_number, primitives_from_json,
                                          program_problems)
from cad2program.synth import STYLES, GeneratorConfig, image_size, make_example, make_labels, write_dataset
from cad2program.synth import fonts

SMALL = 160  # px: enough for every check here, fast to render


@pytest.mark.parametrize("style", STYLES + ("mixed",))
def test_same_inputs_same_bytes(style):
    config = GeneratorConfig(style=style, long_side_px=SMALL)
    first, again = make_example(7, 3, config), make_example(7, 3, config)
    assert first.image.tobytes() == again.image.tobytes()
    assert first.primitives == again.primitives and first.sheet == again.sheet
    other = make_example(7, 4, config)
    assert other.image.shape != first.image.shape or other.image.tobytes() != first.image.tobytes()


@pytest.mark.parametrize("style", STYLES)
def test_images_span_the_sheet_at_the_requested_size(style):
    for index in range(6):
        example = make_example(1, index, GeneratorConfig(style=style, long_side_px=200))
        h, w = example.image.shape[:2]
        assert example.image.dtype == np.uint8 and example.image.shape[2] == 3
        assert max(h, w) == 200
        assert (w, h) == image_size(example.sheet, 200)
        assert abs(w / h - example.sheet.width / example.sheet.height) <= 1.0 / min(w, h) * (w / h) + 1e-9
        assert example.style == style


def test_labels_without_rendering_equal_the_examples():
    config = GeneratorConfig(long_side_px=SMALL)
    for index in range(10):
        example = make_example(6, index, config)
        assert make_labels(6, index, config) == (example.sheet, example.primitives, example.style)


def test_mixed_draws_every_style():
    styles = {make_example(0, i, GeneratorConfig(long_side_px=64)).style for i in range(40)}
    assert styles == set(STYLES)


def test_every_label_is_valid_and_in_scope():
    config = GeneratorConfig(long_side_px=SMALL)
    for index in range(60):
        example = make_example(11, index, config)
        assert program_problems(example.primitives, example.sheet) == []
        assert example.sheet.in_scope_problems() == []
        assert 1 <= len(example.primitives) <= 12


def test_values_sit_on_the_half_millimetre_grid():
    for index in range(30):
        for p in make_example(5, index, GeneratorConfig(long_side_px=64)).primitives:
            values = [v for point in p.points for v in point] if isinstance(p, Polyline) else \
                [getattr(p, f) for f in p.number_fields()]
            for value in values:
                assert value * 2 == round(value * 2) or isinstance(p, Circle), (p, value)
            if isinstance(p, Circle):
                assert (p.radius * 2).is_integer()  # the annotated diameter is a whole number


def test_counts_and_types_follow_the_config():
    config = GeneratorConfig(long_side_px=SMALL, min_primitives=3, max_primitives=5, types=("circle", "rectangle"))
    counts = set()
    for index in range(25):
        example = make_example(2, index, config)
        counts.add(len(example.primitives))
        assert {p.TYPE for p in example.primitives} <= {"circle", "rectangle"}
        assert 3 <= len(example.primitives) <= 5
    assert counts == {3, 4, 5}


def test_a_full_sheet_of_twelve():
    config = GeneratorConfig(long_side_px=SMALL, min_primitives=12, max_primitives=12)
    for index in range(8):
        example = make_example(4, index, config)
        assert len(example.primitives) == 12
        assert program_problems(example.primitives, example.sheet) == []


def test_sheet_knobs():
    config = GeneratorConfig(long_side_px=64, sheet_sides=(100, 120), max_aspect=1.0)
    for index in range(20):
        sheet = make_example(3, index, config).sheet
        assert 100 <= sheet.width <= 120 and sheet.width == sheet.height


def _written_value(text: str) -> float:
    assert text == text.strip() and not text.endswith(".0"), text
    number = text.lstrip("\u00d8R")
    assert number == format_number(float(number)), text  # the shortest form: 40, 12.5
    return float(number)


def _segment_lengths(p) -> set[float]:
    points = list(p.points) + ([p.points[0]] if p.closed else [])
    return {round(math.dist(a, b), 1) for a, b in zip(points[:-1], points[1:])}


def test_annotations_write_the_true_values():
    seen = set()
    for index in range(80):
        example = make_example(9, index, GeneratorConfig(long_side_px=64))
        for i, field, text in example.annotations:
            p = example.primitives[i]
            value = _written_value(text)
            seen.add((p.TYPE, field, text[0] if text[0] in "\u00d8R" else ""))
            if isinstance(p, Circle):
                assert text.startswith("\u00d8") and value == 2 * p.radius
            elif isinstance(p, Arc):
                assert text.startswith("R") and value == p.radius
            elif isinstance(p, Rectangle):
                assert value == getattr(p, field)
            elif isinstance(p, Line):
                assert value == round(math.hypot(p.x2 - p.x1, p.y2 - p.y1), 1)
            else:
                assert value in _segment_lengths(p)
        dimensioned = {i for i, field, _ in example.annotations}
        for i, p in enumerate(example.primitives):  # every size is written, or the label says it is not
            if isinstance(p, (Rectangle, Circle, Arc)):
                assert i in dimensioned or i in example.unannotated
    assert {("circle", "radius", "\u00d8"), ("arc", "radius", "R"), ("rectangle", "width", ""),
            ("rectangle", "height", ""), ("line", "length", ""), ("polyline", "length", "")} <= seen


def test_fonts_draw_digits_at_the_asked_height():
    faces = fonts.available_fonts()
    assert faces["cad"] and faces["hand"]
    for face in faces["cad"] + faces["hand"]:
        size = fonts.font_size_for(face, 20.0)
        heights = [fonts.render_text(face, size, d).shape[0] for d in "0123456789"]
        assert abs(float(np.median(heights)) - 20.0) <= 2.5, face.path
        mask = fonts.render_text(face, size, "\u00d812.5")
        assert mask.any() and mask.shape[1] > mask.shape[0]


def test_fonts_fall_back_when_none_are_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "FONT_ROOTS", (str(tmp_path),))
    fonts.available_fonts.cache_clear()
    try:
        faces = fonts.available_fonts()
        assert faces["cad"][0].path is None and faces["hand"]
        mask = fonts.render_text(faces["cad"][0], fonts.font_size_for(faces["cad"][0], 14), "\u00d840")
        assert mask.any()
    finally:
        fonts.available_fonts.cache_clear()


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="primitive counts"):
        make_example(0, 0, GeneratorConfig(min_primitives=5, max_primitives=2))
    with pytest.raises(ValueError, match="style"):
        make_example(0, 0, GeneratorConfig(style="oil painting"))


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_write_dataset_is_the_same_with_one_or_two_workers(tmp_path):
    config = GeneratorConfig(long_side_px=128)
    one = write_dataset(tmp_path / "one", 40, seed=5, config=config, workers=1, progress=False)
    two = write_dataset(tmp_path / "two", 40, seed=5, config=config, workers=2, progress=False)
    assert _folder_bytes(one) == _folder_bytes(two)
    assert len(list((one / "images").iterdir())) == 40


def test_dataset_folder_round_trips_exactly(tmp_path):
    config = GeneratorConfig(long_side_px=128)
    folder = write_dataset(tmp_path / "data", 24, seed=8, config=config, workers=1, progress=False)
    lines = (folder / "labels.jsonl").read_text().splitlines()
    assert len(lines) == 24
    for index, line in enumerate(lines):
        label = json.loads(line)
        example = make_example(8, index, config)
        assert set(label) == {"image", "sheet", "primitives", "style"}
        assert label["style"] == example.style
        assert primitives_from_json(label["primitives"]) == example.primitives
        assert label["sheet"] == example.sheet.to_json()
        stored = cv2.imread(str(folder / label["image"]), cv2.IMREAD_COLOR)[..., ::-1]
        assert np.array_equal(stored, example.image)  # the file is exactly the example's image
        suffix = Path(label["image"]).suffix
        assert suffix == (".jpg" if example.style in ("scan", "photo") else ".png")


def test_generated_folder_passes_load_labels(tmp_path):
    dataset = pytest.importorskip("cad2program.contract.dataset")
    folder = write_dataset(tmp_path / "data", 12, seed=1, config=GeneratorConfig(long_side_px=128),
                           workers=1, progress=False)
    records, problems = dataset.load_labels(folder)
    assert problems == [] and len(records) == 12


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cad2program.cli", "generate", *args],
                          capture_output=True, text=True, timeout=120)


def test_generate_command_refuses_a_non_empty_folder(tmp_path):
    out = tmp_path / "out"
    done = _cli("--out", str(out), "--count", "3", "--seed", "2", "--size", "96", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert len((out / "labels.jsonl").read_text().splitlines()) == 3
    again = _cli("--out", str(out), "--count", "2", "--size", "96", "--workers", "1")
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    forced = _cli("--out", str(out), "--count", "2", "--size", "96", "--workers", "1", "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert len((out / "labels.jsonl").read_text().splitlines()) == 2


def test_scattered_drawings_dimension_every_size_and_parts_share_end_points():
    for index in range(30):  # without parts, nothing is left undimensioned
        assert make_example(9, index, GeneratorConfig(long_side_px=64, part_share=0.0)).unannotated == ()
    touching = 0
    for index in range(40):
        sheet, primitives, _ = make_labels(4, index, GeneratorConfig(part_share=1.0))
        assert not program_problems(primitives, sheet)
        ends = [(p.x1, p.y1) for p in primitives if isinstance(p, Line)]
        arcs = [p for p in primitives if isinstance(p, Arc)]
        # A fillet or a slot: an arc whose end point is a line's end point.
        for arc in arcs:
            for angle in (arc.start_angle, arc.end_angle):
                end = (arc.x + arc.radius * math.cos(math.radians(angle)), arc.y + arc.radius * math.sin(math.radians(angle)))
                touching += any(math.dist(end, e) < 0.05 for e in ends)
    assert touching > 0


def test_links_are_obrounds_whose_arcs_end_on_their_lines_along_x_or_y(monkeypatch):
    from cad2program.synth import parts
    monkeypatch.setattr(parts, "PART_WEIGHTS", {"plate": 0.0, "flange": 0.0, "bracket": 0.0, "link": 1.0})
    orientations = set()
    for index in range(30):
        sheet, primitives, _ = make_labels(11, index, GeneratorConfig(part_share=1.0, min_primitives=6))
        assert not program_problems(primitives, sheet)
        arcs = [p for p in primitives if isinstance(p, Arc) and (p.end_angle - p.start_angle) % 360 == 180]
        if len(arcs) < 2:
            continue  # the part did not fit: scattered primitives only
        outer = sorted(arcs, key=lambda a: -a.radius)[:2]
        ends = [e for p in primitives if isinstance(p, Line) for e in ((p.x1, p.y1), (p.x2, p.y2))]
        for arc in outer:
            for angle in (arc.start_angle, arc.end_angle):
                end = (arc.x + arc.radius * math.cos(math.radians(angle)), arc.y + arc.radius * math.sin(math.radians(angle)))
                assert any(math.dist(end, e) < 0.05 for e in ends), (index, arc)
        orientations.add("vertical" if outer[0].x == outer[1].x else "horizontal")
    assert orientations == {"vertical", "horizontal"}
