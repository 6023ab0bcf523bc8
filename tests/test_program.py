"""Primitives, JSON and program text: exact round trips, and every refusal of the parser."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings

from cad2program.contract.program import (Arc, Circle, Line, Polyline, ProgramError, Rectangle, Sheet,
                                          primitive_from_json, primitives_from_json, primitives_to_json,
                                          program_problems)
from cad2program.contract.program_text import format_program, parse_any, parse_program
from primitive_strategies import drawings


@settings(max_examples=200, deadline=None)
@given(drawings())
def test_json_program_round_trips_are_exact(drawing):
    sheet, primitives = drawing
    assert program_problems(primitives, sheet) == []
    as_json = json.loads(json.dumps(primitives_to_json(primitives)))
    assert primitives_from_json(as_json) == primitives
    text = format_program(primitives)
    assert parse_program(text) == primitives
    assert format_program(parse_program(text)) == text
    assert parse_any(json.dumps(as_json)) == primitives
    assert Sheet.from_json(json.loads(json.dumps(sheet.to_json()))) == sheet


def test_program_text_in_the_contract_parses():
    text = ("rectangle(x=10, y=15, width=40, height=20)\n"
            "circle(x=30, y=5, radius=5)\n"
            "polyline(points=[(0, 0), (20, 0), (20, 10)], closed=False)\n")
    primitives = parse_program(text)
    assert primitives == [Rectangle(10, 15, 40, 20), Circle(30, 5, 5),
                          Polyline(points=[(0, 0), (20, 0), (20, 10)], closed=False)]
    assert format_program(primitives) == text
    assert primitives_to_json(primitives)[0] == {"type": "rectangle", "x": 10, "y": 15, "width": 40, "height": 20}


def test_accepted_spellings():
    # positional arguments in contract order, negative-free unary plus, lists for points, comments
    assert parse_program("circle(30, 5, radius=+5)  # a hole") == [Circle(30, 5, 5)]
    assert parse_program("polyline([[0, 0], [1.5, 2]])") == [Polyline(points=[(0, 0), (1.5, 2)], closed=False)]
    assert parse_program("line(x1=1.0, y1=2, x2=3, y2=12.300000000000001)") == [Line(1, 2, 3, 12.3)]
    assert parse_program("") == []
    assert parse_program("\n# nothing\n") == []


REFUSALS = [
    # (program text, a regular expression the message must match, "line L, column C" or None)
    ("circle(x=1, y=2, radius=3", r"syntax error", "line 1, column 7"),
    ("circle(x=1, y=2, radius=3)\ncircle(x=1 y=2, radius=3)", r"syntax error", "line 2"),
    ("circel(x=1, y=2, radius=3)", r"unknown primitive 'circel'", "line 1, column 1"),
    ("shapes.circle(x=1, y=2, radius=3)", r"primitive name.*shapes\.circle", "line 1, column 1"),
    ("f()(x=1)", r"primitive name", "line 1, column 1"),
    ("circle(x=1, y=2, r=3)", r"circle has no field 'r'", "line 1, column 20"),
    ("circle(x=1, y=2, radius=3, x=4)", r"field 'x' given twice", "line 1, column 30"),
    ("circle(1, 2, radius=3, y=3)", r"field 'y' given twice", "line 1, column 26"),
    ("circle(x=1, y=2)", r"circle is missing radius", "line 1, column 1"),
    ("arc(x=1, y=2, radius=3)", r"arc is missing start_angle, end_angle", "line 1, column 1"),
    ("circle(1, 2, 3, 4)", r"at most 3 arguments, got 4", "line 1, column 1"),
    ("circle(*args)", r"`\*` arguments", "line 1, column 8"),
    ("circle(x=1, **kw)", r"`\*\*` arguments", "line 1, column 15"),
    ("circle(x=1, y=2, radius='3')", r"radius must be a number", "line 1, column 25"),
    ("circle(x=1, y=2, radius=__import__('os'))", r"radius must be a number, got `__import__\('os'\)`",
     "line 1, column 25"),
    ("circle(x=1, y=2, radius=r)", r"radius must be a number, got `r`", "line 1, column 25"),
    ("circle(x=1, y=2, radius=1+2)", r"radius must be a number, got `1 \+ 2`", "line 1, column 25"),
    ("circle(x=1, y=2, radius=3j)", r"radius must be a number", "line 1, column 25"),
    ("circle(x=1, y=2, radius=None)", r"radius must be a number", "line 1, column 25"),
    ("circle(x=--1, y=2, radius=3)", r"x must be a number", "line 1, column 11"),
    ("circle(x=1, y=2, radius=3.25)", r"3\.25 has more than one decimal", "line 1, column 25"),
    ("circle(x=True, y=2, radius=3)", r"x must be a number, got `True`", "line 1, column 10"),
    ("polyline(points=[(0, 0), (1, 1)], closed=1)", r"closed must be True or False", "line 1, column 42"),
    ("polyline(points=[(0, 0), (1, 1), (2, 2)], closed='yes')", r"closed must be True or False", "line 1"),
    ("polyline(points=[(0, 0), (1, 1, 2)], closed=False)", r"points\[1\] must be an \(x, y\) pair",
     "line 1, column 26"),
    ("polyline(points=5, closed=False)", r"points must be a list", "line 1, column 17"),
    ("polyline(points=[5, (1, 1)], closed=False)", r"points\[0\] must be an \(x, y\) pair", "line 1, column 18"),
    ("polyline(points=[(0, 'a'), (1, 1)])", r"points\[0\] y must be a number", "line 1"),
    ("x = circle(x=1, y=2, radius=3)", r"expected one primitive call a line", "line 1, column 1"),
    ("import os", r"expected one primitive call a line, got `import os`", "line 1, column 1"),
    ("circle(x=1, y=2, radius=3)\n\nprint", r"expected one primitive call", "line 3, column 1"),
    ("lambda: 0", r"expected one primitive call", "line 1, column 1"),
    ("circle(x=1, y=2, radius=3) + 1", r"expected one primitive call", "line 1, column 1"),
    ("circle(x=float('nan'), y=2, radius=3)", r"x must be a number", "line 1, column 10"),
    ("circle(x=1e999, y=2, radius=3)", r"finite number, got inf", "line 1, column 10"),
    ("circle(x=-1e999, y=2, radius=3)", r"finite number", "line 1"),
    ("circle(x=1" + "0" * 400 + ", y=2, radius=3)", r"too large", "line 1, column 10"),
    ("\0", r"syntax error", None),
]


@pytest.mark.parametrize("text, message, where", REFUSALS, ids=[r[0][:40] for r in REFUSALS])
def test_parser_refusals_say_what_and_where(text, message, where):
    with pytest.raises(ProgramError) as caught:
        parse_program(text)
    assert re.search(message, str(caught.value)), str(caught.value)
    if where is not None:
        assert str(caught.value).startswith(where), str(caught.value)


def test_parser_refuses_non_text():
    with pytest.raises(ProgramError, match="a program is text"):
        parse_program(b"circle(x=1, y=2, radius=3)")


def test_parse_any_reports_bad_json_position():
    with pytest.raises(ProgramError, match=r"line 1, column \d+: bad JSON"):
        parse_any('[{"type": "circle",]')


JSON_REFUSALS = [
    ({"type": "circel", "x": 1, "y": 1, "radius": 1}, r"primitives\[0\]: unknown type 'circel'"),
    ({"x": 1}, r"missing field 'type'"),
    ({"type": "circle", "x": 1, "y": 1}, r"circle is missing field 'radius'"),
    ({"type": "circle", "x": 1, "y": 1, "radius": 1, "r": 2}, r"unknown field 'r'"),
    ({"type": "circle", "x": "1", "y": 1, "radius": 1}, r"circle\.x: expected a number"),
    ({"type": "circle", "x": True, "y": 1, "radius": 1}, r"circle\.x: expected a number"),
    ({"type": "circle", "x": 1.23, "y": 1, "radius": 1}, r"more than one decimal"),
    ({"type": "circle", "x": 1, "y": 1, "radius": 10 ** 400}, r"too large"),
    ({"type": "polyline", "points": [[0, 0], [1]], "closed": False}, r"points\[1\]: expected an \[x, y\] pair"),
    ({"type": "polyline", "points": "0,0 1,1"}, r"polyline\.points: expected a list"),
    ({"type": "polyline", "points": [[0, 0], [1, 1]], "closed": "no"}, r"closed: expected true or false"),
    ("circle", r"expected a JSON object"),
    ({"type": ["circle"], "x": 1, "y": 1, "radius": 1}, r"unknown type \['circle'\]"),
    ({"type": {}}, r"unknown type \{\}"),
]


@pytest.mark.parametrize("obj, message", JSON_REFUSALS)
def test_json_refusals(obj, message):
    with pytest.raises(ProgramError, match=message):
        primitives_from_json([obj])


def test_polyline_closed_defaults_to_open_in_json():
    assert primitive_from_json({"type": "polyline", "points": [[0, 0], [1, 1]]}) == \
        Polyline(points=[(0, 0), (1, 1)], closed=False)


SHEET = Sheet(200, 150)
VALIDATION = [
    (Rectangle(10, 10, 0, 5), r"rectangle\.width must be > 0"),
    (Rectangle(10, 10, 5, -1), r"rectangle\.height must be > 0"),
    (Circle(10, 10, 0), r"circle\.radius must be > 0"),
    (Arc(10, 10, -2, 0, 90), r"arc\.radius must be > 0"),
    (Arc(10, 10, 5, 360, 90), r"arc\.start_angle must be in \[0, 360\)"),
    (Arc(10, 10, 5, 0, -10), r"arc\.end_angle must be in \[0, 360\)"),
    (Arc(10, 10, 5, 45, 45), r"start_angle equals end_angle"),
    (Polyline(points=[(1, 1)], closed=False), r"at least 2 points"),
    (Polyline(points=[(1, 1), (2, 2)], closed=True), r"closed polyline needs at least 3 points"),
    (Line(5, 5, 5, 5), r"end points are the same point"),
    (Line(5, 5, 200.1, 5), r"point \(200\.1, 5\) lies outside the 200 x 150 sheet"),
    (Circle(-1, 5, 1), r"outside the 200 x 150 sheet"),
    (Rectangle(150, 100, 60, 10), r"outside the 200 x 150 sheet"),
    (Polyline(points=[(0, 0), (10, 150.5)], closed=False), r"outside the 200 x 150 sheet"),
]


@pytest.mark.parametrize("primitive, message", VALIDATION)
def test_validation_problems(primitive, message):
    problems = program_problems([Circle(1, 1, 1), primitive], SHEET)
    assert len(problems) >= 1
    assert problems[0].startswith("primitive 2: ")
    assert any(re.search(message, p) for p in problems), problems


def test_points_on_the_sheet_border_are_valid():
    assert program_problems([Rectangle(0, 0, 200, 150), Line(0, 150, 200, 0)], SHEET) == []


def test_sheet_refusals_and_scope():
    with pytest.raises(ProgramError, match="must be > 0"):
        Sheet(0, 100)
    with pytest.raises(ProgramError, match="missing field height"):
        Sheet.from_json({"width": 100})
    assert Sheet(200, 150).in_scope_problems() == []
    assert any("outside 50..500" in p for p in Sheet(30, 40).in_scope_problems())
    assert any("beyond 2:1" in p for p in Sheet(300, 100).in_scope_problems())
