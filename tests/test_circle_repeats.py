"""Circles of a found one's radius found again on the ink (`refine.circle_repeats`)."""

from __future__ import annotations

import cv2
import numpy as np

from cad2program.contract.geometry import pair_error
from cad2program.contract.program import Circle, Line
from cad2program.refine.circle_repeats import repeated_circles
from test_refine import PX_PER_MM, SHEET, draw

HOLES = [Circle(40, 40, 6), Circle(100, 40, 6), Circle(160, 40, 6)]


def _matches(found, truth):
    return sorted(any(pair_error(f, t, SHEET) is not None for f in found) for t in truth)


def test_the_holes_of_one_size_the_model_left_out_are_found_and_the_found_one_is_not_repeated():
    image = draw(HOLES + [Circle(100, 110, 25), Line(10, 80, 190, 80)])
    found = repeated_circles(image, SHEET, [HOLES[0], Circle(100, 110, 25)], min_inked=0.95)
    assert _matches(found, HOLES[1:]) == [True, True]
    assert len(found) == 2  # not the first hole again, nothing on the line, no 25 mm round elsewhere


def test_rounds_that_are_not_holes_are_not_taken_for_them():
    image = draw([HOLES[0], Line(20, 100, 180, 100)])
    # arrowheads where dimension lines meet, a half-drawn round of the hole's size, text
    for tip in ((60, 100), (100, 100)):
        tail = np.array([[0, 0], [-14, -5], [-14, 5]]) * PX_PER_MM // 3 + np.array(tip) * PX_PER_MM
        cv2.fillPoly(image, [tail.astype(np.int32)[:, ::1]], 0)
        col, row = tip[0] * PX_PER_MM, tip[1] * PX_PER_MM
        cv2.line(image, (col, row - 40), (col, row + 40), 0, 1)
    cv2.ellipse(image, (round(150 * PX_PER_MM), round(100 * PX_PER_MM)), (round(6 * PX_PER_MM),) * 2, 0, 0, 180, 0, 2)
    cv2.putText(image, "O0O", (round(120 * PX_PER_MM), round(130 * PX_PER_MM)), cv2.FONT_HERSHEY_SIMPLEX, 1.5, 0, 3)
    assert repeated_circles(image, SHEET, [HOLES[0]], min_inked=0.95) == []


def test_above_one_the_rule_is_off_and_without_a_circle_it_has_no_size_to_look_for():
    image = draw(HOLES)
    assert repeated_circles(image, SHEET, [HOLES[0]], min_inked=1.01) == []
    assert repeated_circles(image, SHEET, [Line(10, 10, 50, 10)], min_inked=0.95) == []
    assert np.all(image[:5] == 255)  # the drawing itself is left alone


def test_strokes_meeting_at_an_arrowheads_tip_are_not_a_small_hole():
    small = Circle(30, 30, 2)
    tip = (120, 75)
    strokes = [Line(*tip, round(tip[0] + 40 * np.cos(np.radians(a)), 1), round(tip[1] + 40 * np.sin(np.radians(a)), 1))
               for a in (0, 15, -15, 90, 270)]
    image = draw([small] + strokes)
    assert repeated_circles(image, SHEET, [small], min_inked=0.95) == []


def test_the_radius_of_a_circle_read_in_the_wrong_place_finds_where_it_is_drawn():
    image = draw(HOLES[:1])
    assert repeated_circles(image, SHEET, [], min_inked=0.95) == []
    [found] = repeated_circles(image, SHEET, [], min_inked=0.95, more_radii=[6])
    assert pair_error(found, HOLES[0], SHEET) is not None


def test_small_holes_the_model_did_not_write_are_found_alone_or_crossed_by_their_centre_marks():
    from cad2program.refine.circle_repeats import lone_rounds

    crossed, alone, written = Circle(50, 50, 3), Circle(120, 50, 2.5), Circle(150, 110, 20)
    marks = [Line(44, 50, 56, 50), Line(50, 44, 50, 56)]
    image = draw([crossed, alone, written] + marks + [Line(10, 20, 190, 20)])
    # not holes: a Ø sign (a round with a slash through it and past it), the loops of digits
    slashed = (round(80 * PX_PER_MM), round(100 * PX_PER_MM))
    cv2.circle(image, slashed, round(2.5 * PX_PER_MM), 0, 2)
    cv2.line(image, (slashed[0] - 12, slashed[1] + 12), (slashed[0] + 12, slashed[1] - 12), 0, 2)
    cv2.putText(image, "689", (round(20 * PX_PER_MM), round(130 * PX_PER_MM)), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 0, 2)
    found = lone_rounds(image, SHEET, [written], min_inked=0.97)
    assert _matches(found, [crossed, alone]) == [True, True]
    assert len(found) == 2  # not the circle found already, not the Ø, not the digits
    assert all(abs(f.radius - t.radius) <= 0.4 for f, t in zip(sorted(found, key=lambda c: c.x), [crossed, alone]))
    assert lone_rounds(image, SHEET, [written], min_inked=1.5) == []
    # a round just before a number the OCR read is the number's Ø sign
    beside_text = [(alone.x * PX_PER_MM + 12, (SHEET.height - alone.y) * PX_PER_MM)]
    assert _matches(lone_rounds(image, SHEET, [written], 0.97, beside_text), [crossed, alone]) == [False, True]
