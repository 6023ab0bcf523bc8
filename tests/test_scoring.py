"""Scoring (contract, section 5): match rules, maximum matching with least error, metrics by hand."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet
from cad2program.contract.geometry import angle_difference, as_segments, pair_error
from cad2program.evaluation.scoring import format_report_table, match_primitives, score, score_drawing, score_files
from primitive_strategies import drawings

SHEET = Sheet(200, 150)  # t = 0.02 * 200 = 4 mm


def matches(pred, true, sheet=SHEET) -> bool:
    return pair_error(pred, true, sheet) is not None


@pytest.mark.parametrize("pred, expected", [
    (Circle(54, 50, 10), True),  # x off by exactly t
    (Circle(54.1, 50, 10), False),  # just beyond t
    (Circle(50, 46, 14), True),  # y and radius both at t
    (Circle(50, 50, 5.9), False),
])
def test_tolerance_edges(pred, expected):
    assert matches(pred, Circle(50, 50, 10)) is expected


def test_tolerance_is_two_percent_of_the_longer_side_and_survives_float_noise():
    assert matches(Circle(14.3, 0, 1), Circle(10.3, 0, 1))  # 14.3 - 10.3 is 4.000000000000002 in floats
    tall = Sheet(100, 300)  # t = 6
    assert matches(Circle(16, 10, 5), Circle(10, 10, 5), tall)
    assert not matches(Circle(16.1, 10, 5), Circle(10, 10, 5), tall)


def test_rectangle_every_field_counts():
    true = Rectangle(10, 10, 40, 20)
    assert matches(Rectangle(14, 6, 44, 16), true)
    for pred in (Rectangle(14.1, 10, 40, 20), Rectangle(10, 10, 35.9, 20), Rectangle(10, 10, 40, 24.1)):
        assert not matches(pred, true)


def test_types_never_match_across():
    assert not matches(Circle(50, 50, 10), Arc(50, 50, 10, 0, 90))
    assert match_primitives([Circle(50, 50, 10)], [Arc(50, 50, 10, 0, 90)], SHEET) == []


def test_line_matches_with_end_points_swapped():
    true = Line(0, 0, 100, 50)
    assert pair_error(Line(100, 50, 0, 0), true, SHEET) == 0
    assert matches(Line(103, 47, 1, 1), true)
    assert not matches(Line(0, 100, 100, 0), true)  # crossing is not swapping
    assert not matches(Line(100, 50, 0, 4.5), true)


@pytest.mark.parametrize("a, b, difference", [(359, 2, 3), (2, 359, 3), (0, 180, 180), (10, 15, 5), (350, 10, 20)])
def test_angle_difference_is_measured_around_the_circle(a, b, difference):
    assert angle_difference(a, b) == pytest.approx(difference)


@pytest.mark.parametrize("start, end, expected", [
    (359, 92, True),  # 359 vs 0: wrap-around
    (2, 88, True),
    (355, 95, True),  # both exactly 5 degrees off
    (354.9, 90, False),
    (0, 95.1, False),
    (90, 0, False),  # the complementary arc (counter-clockwise from 90 to 0) is another arc
])
def test_arc_angles_within_five_degrees(start, end, expected):
    assert matches(Arc(50, 50, 20, start, end), Arc(50, 50, 20, 0, 90)) is expected


def test_arc_centre_and_radius_use_the_position_tolerance():
    assert matches(Arc(54, 50, 24, 0, 90), Arc(50, 50, 20, 0, 90))
    assert not matches(Arc(50, 50, 24.2, 0, 90), Arc(50, 50, 20, 0, 90))


OPEN_TRUE = Polyline(points=[(0, 0), (50, 0), (50, 50), (100, 60)], closed=False)
SQUARE = Polyline(points=[(0, 0), (50, 0), (50, 50), (0, 50)], closed=True)


@pytest.mark.parametrize("pred, expected", [
    (OPEN_TRUE, True),
    (Polyline(points=OPEN_TRUE.points[::-1], closed=False), True),  # reversed
    (Polyline(points=[(2, 2), (50, 4), (53, 50), (100, 56)], closed=False), True),
    (Polyline(points=[(3, 3), (50, 0), (50, 50), (100, 60)], closed=False), False),  # 4.24 mm away: Euclidean
    (Polyline(points=OPEN_TRUE.points[1:] + OPEN_TRUE.points[:1], closed=False), False),  # open: no shifts
    (Polyline(points=OPEN_TRUE.points[:3], closed=False), False),  # fewer points
    (Polyline(points=OPEN_TRUE.points, closed=True), False),  # closed flag differs
])
def test_open_polyline_rules(pred, expected):
    assert matches(pred, OPEN_TRUE) is expected


@pytest.mark.parametrize("shift", range(4))
@pytest.mark.parametrize("reverse", [False, True])
def test_closed_polyline_matches_under_cyclic_shifts_and_reversal(shift, reverse):
    points = list(SQUARE.points[shift:] + SQUARE.points[:shift])
    if reverse:
        points = points[::-1]
    assert pair_error(Polyline(points=points, closed=True), SQUARE, SHEET) == 0
    assert not matches(Polyline(points=points, closed=False), SQUARE)


def test_closed_polyline_out_of_order_does_not_match():
    bowtie = Polyline(points=[(0, 0), (50, 50), (50, 0), (0, 50)], closed=True)  # same points, other order
    assert not matches(bowtie, SQUARE)


def test_maximum_matching_beats_greedy():
    # Greedy by least error pairs pred 0 with true 0 (error 0.25) and leaves pred 1 alone;
    # the maximum matching pairs pred 0 with true 1 and pred 1 with true 0.
    true = [Circle(100, 50, 10), Circle(103.5, 50, 10)]
    pred = [Circle(101, 50, 10), Circle(97, 50, 10)]
    assert not matches(pred[1], true[1])
    assert match_primitives(pred, true, SHEET) == [(0, 1), (1, 0)]


def test_among_maximum_matchings_the_least_error_wins():
    true = [Circle(100, 50, 10), Circle(102, 50, 10), Circle(104, 50, 10)]
    pred = [Circle(104, 50, 10), Circle(100.5, 50, 10), Circle(102, 50, 10)]
    assert match_primitives(pred, true, SHEET) == [(0, 2), (1, 0), (2, 1)]


def test_each_primitive_is_used_once():
    true = [Circle(100, 50, 10)]
    pred = [Circle(100, 50, 10), Circle(100, 50, 10)]
    assert match_primitives(pred, true, SHEET) == [(0, 0)]
    assert match_primitives(true, pred, SHEET) == [(0, 0)]
    assert match_primitives([], true, SHEET) == [] and match_primitives(pred, [], SHEET) == []


@settings(max_examples=100, deadline=None)
@given(drawings())
def test_a_shuffled_copy_of_the_truth_scores_perfectly(drawing):
    sheet, truth = drawing
    pred = list(truth)
    random.Random(len(truth)).shuffle(pred)
    result = score_drawing(pred, truth, sheet)
    assert len(result["pairs"]) == len(truth)
    assert all(pair_error(pred[i], truth[j], sheet) == 0 for i, j in result["pairs"])
    assert result["exact"] and result["valid"]


# ----------------------------------------------------------------------------------------------
# Metrics by hand
# ----------------------------------------------------------------------------------------------

TINY = [
    # A (clean): both matched; the rectangle's height is 1 mm off -> 2 of 3 size fields exact
    ([Circle(51, 50, 10), Rectangle(10, 10, 40, 21)], [Circle(50, 50, 10), Rectangle(10, 10, 40, 20)], SHEET, "clean"),
    # B (scan): the line matches swapped; one circle invented
    ([Line(100, 100, 0, 0), Circle(10, 10, 5)], [Line(0, 0, 100, 100)], SHEET, "scan"),
    # C (scan): the output did not parse
    (None, [Arc(50, 50, 20, 0, 90)], SHEET, "scan"),
    # D (clean): exact
    ([Circle(20, 20, 5)], [Circle(20, 20, 5)], SHEET, "clean"),
]


def test_metrics_on_a_tiny_dataset_computed_by_hand():
    report = score(TINY)
    assert (report["true"], report["predicted"], report["matched"]) == (5, 5, 4)
    assert report["precision"] == pytest.approx(0.8) and report["recall"] == pytest.approx(0.8)
    assert report["f1"] == pytest.approx(0.8)
    assert (report["size_fields"], report["size_fields_exact"]) == (4, 3)
    assert report["size_exactness"] == pytest.approx(0.75)
    assert report["drawing_accuracy"] == pytest.approx(0.25)
    assert report["valid_rate"] == pytest.approx(0.75)
    per_type = report["per_type"]
    assert per_type["circle"] == pytest.approx({"f1": 0.8, "precision": 2 / 3, "recall": 1.0,
                                                "true": 2, "predicted": 3, "matched": 2})
    assert per_type["arc"] == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "true": 1, "predicted": 0, "matched": 0}
    assert per_type["line"]["f1"] == 1.0 and per_type["rectangle"]["f1"] == 1.0
    assert "polyline" not in per_type
    clean, scan = report["per_style"]["clean"], report["per_style"]["scan"]
    assert clean["drawings"] == 2 and clean["f1"] == 1.0 and clean["drawing_accuracy"] == 0.5
    assert clean["size_exactness"] == pytest.approx(0.75) and clean["valid_rate"] == 1.0
    assert scan["f1"] == pytest.approx(0.5) and scan["size_exactness"] is None
    assert scan["drawing_accuracy"] == 0.0 and scan["valid_rate"] == 0.5
    json.dumps(report)  # JSON-able


def test_unparsable_output_is_an_empty_invalid_prediction():
    report = score([(None, [Circle(20, 20, 5)], SHEET, None)])
    assert report["predicted"] == 0 and report["recall"] == 0 and report["f1"] == 0
    assert report["valid_rate"] == 0 and report["drawing_accuracy"] == 0
    assert report["per_style"] == {}
    # even when there was nothing to find, an invalid output is not an exact drawing
    assert score([(None, [], SHEET, None)])["drawing_accuracy"] == 0
    assert score([([], [], SHEET, None)])["drawing_accuracy"] == 1


def test_sizes_must_be_exact_to_the_tenth():
    result = score_drawing([Circle(20, 20, 5.1)], [Circle(20, 20, 5)], SHEET)
    assert result["size_fields"] == 1 and result["size_exact"] == 0 and not result["exact"]


def test_report_table_lists_overall_types_and_styles():
    table = format_report_table(score(TINY))
    assert "drawings 4" in table and "valid rate 75.0%" in table and "drawing accuracy 25.0%" in table
    rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
    assert rows["all"][1:] == ["0.800", "0.800", "0.800", "5", "5", "4"]
    assert rows["arc"][1:] == ["0.000", "0.000", "0.000", "1", "0", "0"]
    assert rows["scan"][1:3] == ["2", "0.500"]
    assert rows["clean"][1:3] == ["2", "1.000"]


def test_empty_dataset_has_no_ratios():
    report = score([])
    assert report["drawings"] == 0 and report["valid_rate"] is None and report["drawing_accuracy"] is None


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------


def test_score_files_pairs_by_image_key(tmp_path):
    truth = tmp_path / "truth"
    truth.mkdir()
    sheet = {"width": 200, "height": 150}
    circle = {"type": "circle", "x": 20, "y": 20, "radius": 5}
    labels = [{"image": f"images/{i}.png", "sheet": sheet, "primitives": [circle], "style": "clean"}
              for i in range(6)]
    (truth / "labels.jsonl").write_text("\n".join(json.dumps(line) for line in labels) + "\n")
    predictions = [
        {"image": "images/0.png", "primitives": [circle]},  # exact
        {"image": "images/1.png", "program": "circle(x=20, y=20, radius=5)\n"},  # exact, as program text
        {"image": "images/2.png", "program": "circle(x=20, y=20, radius=oops)"},  # does not parse
        {"image": "images/3.png", "primitives": [{"type": "circle", "x": 20, "y": 20, "radius": 5},
                                                 {"type": "circle", "x": 250, "y": 20, "radius": 5}]},  # off sheet
        # images/4.png: no prediction
        {"image": "images/5.png", "primitives": [circle]},
        {"image": "images/5.png", "primitives": []},  # duplicate: ignored
        {"image": "images/9.png", "primitives": [circle]},  # no such truth
    ]
    pred_file = tmp_path / "predictions.jsonl"
    pred_file.write_text("\n".join(json.dumps(line) for line in predictions) + "\n{broken\n")
    report = score_files(pred_file, truth)
    assert report["drawings"] == 6
    assert report["valid"] == 3 and report["matched"] == 3 and report["predicted"] == 3
    assert report["drawing_accuracy"] == pytest.approx(0.5)
    problems = "\n".join(report["problems"])
    assert "'images/2.png' is invalid: line 1, column 27: radius must be a number" in problems
    assert "'images/3.png' is invalid: primitive 2: circle: point (250, 20) lies outside" in problems
    assert "no prediction for 'images/4.png'" in problems
    assert "predictions.jsonl:6: image 'images/5.png' already predicted on line 5" in problems
    assert "'images/9.png': no such image in the truth" in problems
    assert "predictions.jsonl:8: bad JSON" in problems
    assert report["per_style"]["clean"]["drawings"] == 6


# ----------------------------------------------------------------------------------------------
# Contract 1.1: "annotated": false, and geometry-only scoring
# ----------------------------------------------------------------------------------------------


def test_an_unannotated_truth_counts_for_matching_but_not_for_size_exactness():
    from cad2program.contract.program import primitives_from_json

    true = primitives_from_json([{"type": "circle", "x": 20, "y": 20, "radius": 5, "annotated": False},
                                 {"type": "circle", "x": 60, "y": 20, "radius": 5}])
    assert [p.annotated for p in true] == [False, True]
    assert true[0].to_json()["annotated"] is False and "annotated" not in true[1].to_json()
    # both measured 0.3 off: matched, but only the annotated one's radius is a size field
    result = score_drawing([Circle(20, 20, 5.3), Circle(60, 20, 5.3)], true, SHEET)
    assert len(result["pairs"]) == 2 and (result["size_fields"], result["size_exact"]) == (1, 0)
    # with the annotated one exact, the drawing is entirely right although the other is not exact
    assert score_drawing([Circle(20, 20, 5.3), Circle(60, 20, 5)], true, SHEET)["exact"]


def test_annotated_must_be_a_boolean():
    from cad2program.contract.program import ProgramError, primitives_from_json

    with pytest.raises(ProgramError, match="annotated"):
        primitives_from_json([{"type": "circle", "x": 20, "y": 20, "radius": 5, "annotated": "no"}])


def test_geometry_only_counts_rectangles_and_polylines_as_their_sides():

    rectangle = Rectangle(10, 10, 40, 20)
    sides = as_segments([rectangle])
    assert sides == [Line(10, 10, 50, 10), Line(50, 10, 50, 30), Line(50, 30, 10, 30), Line(10, 30, 10, 10)]
    assert len(as_segments([Polyline(((0, 0), (10, 0), (10, 10)), closed=True)])) == 3
    assert len(as_segments([Polyline(((0, 0), (10, 0), (10, 10)), closed=False)])) == 2
    assert as_segments([Circle(5, 5, 2)]) == [Circle(5, 5, 2)]
    # four lines read for a rectangle: wrong as a program, right as geometry
    items = [(sides, [rectangle, Circle(100, 100, 10)], SHEET, None)]
    plain, geometry = score(items), score(items, geometry_only=True)
    assert plain["matched"] == 0 and plain["true"] == 2
    assert (geometry["true"], geometry["predicted"], geometry["matched"]) == (5, 4, 4)
    assert geometry["per_type"]["line"]["f1"] == 1.0 and geometry["per_type"]["circle"]["recall"] == 0.0
    assert geometry["size_exactness"] is None and geometry["geometry_only"] is True
    # a closed polyline read for the rectangle matches too, and sizes never count
    exact = score([([Polyline(((10, 10), (50, 10), (50, 30), (10, 30)), closed=True), Circle(100, 100, 12)],
                    [rectangle, Circle(100, 100, 10)], SHEET, None)], geometry_only=True)
    assert exact["f1"] == 1.0 and exact["drawing_accuracy"] == 1.0 and exact["size_fields"] == 0
