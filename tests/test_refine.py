"""Re-measuring primitives on the image's ink: drawings made here with OpenCV (not the project's renderer),
read back from deliberately wrong guesses of the kind the model makes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet
from cad2program.contract.geometry import pair_error
from cad2program.refine import ink_mask, refine_primitives, remeasure_arcs
from cad2program.refine.along_circle import centre_mark, close_gaps, runs, span_degrees
from cad2program.refine.ink import band_width
from cad2program.refine.polylines import with_sharp_corners

SHEET = Sheet(200, 150)
PX_PER_MM = 3


def draw(primitives, noise: float = 0.0, seed: int = 0, width: int = 2) -> np.ndarray:
    """A white 600 x 450 image with the primitives in black (arcs and polylines `width` px wide, with
    OpenCV's round ends; sheet y up, image y down)."""
    import cv2

    image = np.full((round(SHEET.height * PX_PER_MM), round(SHEET.width * PX_PER_MM)), 255, np.uint8)

    def px(x, y):
        return round(x * PX_PER_MM), round((SHEET.height - y) * PX_PER_MM)

    for p in primitives:
        if isinstance(p, Line):
            cv2.line(image, px(p.x1, p.y1), px(p.x2, p.y2), 0, 2)
        elif isinstance(p, Rectangle):
            cv2.rectangle(image, px(p.x, p.y + p.height), px(p.x + p.width, p.y), 0, 2)
        elif isinstance(p, Circle):
            cv2.circle(image, px(p.x, p.y), round(p.radius * PX_PER_MM), 0, 2)
        elif isinstance(p, Arc):
            sweep = (p.end_angle - p.start_angle) % 360
            angles = np.radians(p.start_angle + np.linspace(0, sweep, 200))
            points = [px(p.x + p.radius * np.cos(a), p.y + p.radius * np.sin(a)) for a in angles]
            cv2.polylines(image, [np.array(points, np.int32)], False, 0, width)
        elif isinstance(p, Polyline):
            cv2.polylines(image, [np.array([px(x, y) for x, y in p.points], np.int32)], p.closed, 0, width)
    if noise:
        rng = np.random.default_rng(seed)
        image = np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)
    return image


TRUTH = [Arc(50, 100, 20, 30, 200), Line(110, 20, 190, 60), Rectangle(20, 15, 50, 30),
         Polyline(((100, 90), (130, 130), (170, 90)), False), Circle(160, 120, 12)]
# The model's kind of mistakes: angles 15-20 degrees out, ends and edges a few mm off, a corner moved.
GUESS = [Arc(51, 99, 20, 12, 220), Line(112, 19, 180, 57), Rectangle(17, 13, 50, 30),
         Polyline(((101, 92), (128, 133), (168.5, 90)), False), Circle(160, 120, 12)]


@pytest.mark.parametrize("noise", [0.0, 25.0])
def test_guesses_are_moved_onto_the_drawn_ink(noise):
    refined = refine_primitives(draw(TRUTH, noise), SHEET, GUESS)
    tight = 0.5 * 0.02 * max(SHEET.width, SHEET.height)  # well inside the matching tolerance
    assert [type(p) for p in refined] == [type(p) for p in TRUTH]
    arc = refined[0]
    assert arc.radius == 20  # the size read from the annotation is kept
    assert abs(arc.start_angle - 30) <= 3 and abs(arc.end_angle - 200) <= 3
    assert pair_error(GUESS[0], TRUTH[0], SHEET) is None and pair_error(arc, TRUTH[0], SHEET) is not None
    line = refined[1]
    assert max(np.hypot(line.x1 - 110, line.y1 - 20), np.hypot(line.x2 - 190, line.y2 - 60)) <= tight
    assert refined[2] == Rectangle(20, 15, 50, 30)  # edges from the ink, width and height as read
    polyline = refined[3]
    assert all(np.hypot(x - tx, y - ty) <= tight for (x, y), (tx, ty) in zip(polyline.points, TRUTH[3].points))
    assert refined[4] == GUESS[4]  # the circle was where the ink is, and its read radius stays


def test_without_ink_where_the_model_saw_something_the_guesses_are_kept():
    blank = np.full((450, 600), 255, np.uint8)
    assert refine_primitives(blank, SHEET, GUESS) == GUESS
    elsewhere = draw([Line(10, 140, 60, 140)])  # ink, but nowhere near the guesses
    assert refine_primitives(elsewhere, SHEET, GUESS) == GUESS


def test_a_rectangle_whose_read_width_the_ink_contradicts_takes_the_inks():
    # 3.5 mm out: inside the matching tolerance (4 mm), too far for a reading that the ink confirms (2 mm)
    refined = refine_primitives(draw([Rectangle(20, 15, 50, 30)]), SHEET, [Rectangle(20, 15, 46.5, 30)])
    assert refined[0].width == pytest.approx(50, abs=0.7) and refined[0].height == 30


def test_a_rectangle_edge_misread_by_several_tolerances_finds_its_stroke_further_out():
    # Read 38 wide where 50 is drawn: the right edge is 12 mm (3 tolerances) from any ink the model
    # put it near; a parallel dimension line below does not run along the edge and is not taken.
    image = draw([Rectangle(20, 15, 50, 30), Line(20, 8, 70, 8)])
    [refined] = refine_primitives(image, SHEET, [Rectangle(20.5, 15, 38, 30)])
    assert refined.width == pytest.approx(50, abs=0.7) and refined.x == pytest.approx(20, abs=0.7)
    assert refined.height == 30


def test_an_arc_whose_centre_the_model_put_beyond_the_tolerance_is_found():
    truth = Arc(50, 100, 20, 30, 200)
    guess = Arc(56, 101, 20, 30, 200)  # 6 mm off, the tolerance is 4 mm
    [refined] = refine_primitives(draw([truth]), SHEET, [guess])
    assert pair_error(guess, truth, SHEET) is None and pair_error(refined, truth, SHEET) is not None


def test_a_thick_arc_ends_where_its_stroke_ends_not_where_the_pens_round_ends_reach():
    truth = Arc(50, 100, 10, 40, 140)  # 30 px radius: the round end of a 5 px pen reaches 5 degrees on
    [refined] = refine_primitives(draw([truth], width=5), SHEET, [Arc(50.5, 99.5, 10, 35, 146)])
    assert abs(refined.start_angle - 40) <= 2 and abs(refined.end_angle - 140) <= 2


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize("radius", [8, 20])
def test_a_slots_arc_ends_where_its_lines_leave_it_along_the_tangent(radius):
    """Within the thin band a tangent line's ink stays on the circle for a while past the tangent point
    (about 15 to 25 degrees): the arc ends at the tangent point, not where that ink leaves the band."""
    left = Arc(60, 75, radius, 90, 270)  # the left end of a slot, its two straight sides going right
    sides = [Line(60, 75 + radius, 150, 75 + radius), Line(60, 75 - radius, 150, 75 - radius)]
    guess = Arc(61, 74, radius, 100, 262)
    [refined, *_] = refine_primitives(draw([left, *sides]), SHEET, [guess, *sides])
    assert _angle_gap(refined.start_angle, 90) <= 3 and _angle_gap(refined.end_angle, 270) <= 3, refined


def test_an_arc_end_that_a_line_crosses_or_a_free_end_keeps_its_inked_span():
    """Ink crossing the circle near an end (a leader) or no ink at all beyond it is not a leaving line."""
    truth = Arc(60, 75, 20, 30, 200)
    leader = Line(60 + 10, 75 + 5, 60 + 35, 75 + 25)  # radial-ish, across the arc near its start
    guess = Arc(61, 74, 20, 25, 205)
    for ink in ([truth], [truth, leader]):
        [refined, *_] = refine_primitives(draw(ink), SHEET, [guess, *ink[1:]])
        assert _angle_gap(refined.start_angle, 30) <= 3 and _angle_gap(refined.end_angle, 200) <= 3, refined


def test_a_line_running_on_into_an_arc_along_its_tangent_ends_where_the_arc_begins():
    from cad2program.refine.joints import with_lines_ended_at_arcs

    arc = Arc(60, 75, 20, 90, 270)  # a slot's left end: its sides leave at (60, 95) and (60, 55)
    overshooting = Line(52.5, 95.2, 150, 95)  # measured 7.5 mm on into the arc
    across = Line(60, 40, 60, 50)  # meets the arc's lower end at a right angle: no tangent
    apart = Line(20, 140, 80, 140)
    joined = with_lines_ended_at_arcs([arc, overshooting, across, apart], 4.0)
    assert joined[0] == arc and joined[2:] == [across, apart]
    assert abs(joined[1].x1 - 60) <= 0.2 and abs(joined[1].y1 - 95.2) <= 0.2 and joined[1].x2 == 150


def test_a_short_arc_whose_radius_was_misread_settles_on_the_circle_its_ink_draws():
    truth = Arc(50, 100, 12, 60, 150)
    guess = Arc(51, 101.5, 13.5, 55, 155)  # the radius read 1.5 mm long, the centre 1.8 mm off
    [refined] = refine_primitives(draw([truth], width=4), SHEET, [guess])
    assert np.hypot(refined.x - 50, refined.y - 100) <= 0.5
    assert abs(refined.start_angle - 60) <= 3 and abs(refined.end_angle - 150) <= 3
    assert refined.radius == 13.5  # positions come from the ink, sizes as read


def _wobbly_arc_image(centre_mark: bool) -> np.ndarray:
    """A short arc round (50, 100) whose radius swells from 12 mm at its middle to 13.5 at its ends (a
    hand's stroke off any circle), with or without a centre mark: an upright cross 5 mm wide."""
    import cv2

    image = draw([])
    px = lambda x, y: (round(x * PX_PER_MM), round((SHEET.height - y) * PX_PER_MM))  # noqa: E731
    angles = np.radians(np.linspace(60, 120, 100))
    radii = 12 + 1.5 * np.cos(3 * (angles - np.pi / 2))
    points = [px(50 + r * np.cos(a), 100 + r * np.sin(a)) for r, a in zip(radii, angles)]
    cv2.polylines(image, [np.array(points, np.int32)], False, 0, 3)
    if centre_mark:
        cv2.line(image, px(47.5, 100), px(52.5, 100), 0, 2)
        cv2.line(image, px(50, 97.5), px(50, 102.5), 0, 2)
    return image


def test_a_short_arc_with_a_centre_mark_is_centred_on_it():
    guess = Arc(51, 101.5, 13, 55, 125)
    [unmarked] = refine_primitives(_wobbly_arc_image(False), SHEET, [guess])
    [marked] = refine_primitives(_wobbly_arc_image(True), SHEET, [guess])
    assert np.hypot(unmarked.x - 50, unmarked.y - 100) > 1.5  # the bent stroke alone pulls the centre off
    assert np.hypot(marked.x - 50, marked.y - 100) <= 0.2
    assert abs(marked.start_angle - 60) <= 2 and abs(marked.end_angle - 120) <= 2


def test_a_centre_mark_is_a_small_upright_cross_standing_alone():
    import cv2

    def found(draw_on, near=(150, 150), reach=20):
        image = np.full((300, 300), 255, np.uint8)
        draw_on(image)
        ink = ink_mask(image)
        return centre_mark(ink, *near, reach, band_width(ink))

    def cross(image, col=150, row=150, arm=8):
        cv2.line(image, (col - arm, row), (col + arm, row), 0, 2)
        cv2.line(image, (col, row - arm), (col, row + arm), 0, 2)

    assert np.allclose(found(cross), (150, 150), atol=1)
    assert np.allclose(found(lambda im: cross(im, 160, 145), near=(150, 150)), (160, 145), atol=1)
    assert found(lambda im: cross(im, 190, 150)) is None  # beyond reach
    assert found(lambda im: cv2.line(im, (142, 150), (158, 150), 0, 2)) is None  # a lone stroke
    long_lines = lambda im: (cv2.line(im, (60, 150), (240, 150), 0, 2), cv2.line(im, (150, 60), (150, 240), 0, 2))  # noqa: E731
    assert found(long_lines) is None  # lines crossing, not a mark
    assert found(lambda im: cv2.rectangle(im, (142, 142), (158, 158), 0, 2)) is None  # a box


def test_an_arc_whose_radius_is_read_again_is_measured_again_with_it():
    truth, line = Arc(50, 100, 12, 60, 150), Line(110, 20, 190, 60)
    image = draw([truth, line], width=5)
    measured = refine_primitives(image, SHEET, [Arc(52.5, 99, 10.5, 55, 155), line])  # the radius misread
    assert remeasure_arcs(image, SHEET, measured, measured) == measured  # nothing read again: as it was
    read = [dataclasses.replace(measured[0], radius=12), measured[1]]
    arc, same_line = remeasure_arcs(image, SHEET, measured, read)
    assert same_line == measured[1] and arc.radius == 12
    assert np.hypot(arc.x - 50, arc.y - 100) <= 0.5
    assert max(abs(arc.start_angle - 60), abs(arc.end_angle - 150)) <= 1.5
    assert max(abs(measured[0].start_angle - 60), abs(measured[0].end_angle - 150)) > 1.5


def test_an_arc_on_the_right_circle_but_the_wrong_part_of_it_takes_the_inked_part():
    truth = Arc(50, 100, 20, 30, 200)
    guess = Arc(50.5, 99, 20, 240, 330)  # where nothing of this circle is drawn
    [refined] = refine_primitives(draw([truth, Line(100, 20, 190, 20)]), SHEET, [guess])
    assert pair_error(refined, truth, SHEET) is not None
    blank_elsewhere = draw([Line(100, 20, 190, 20)])  # no circle near: the guess stays
    assert refine_primitives(blank_elsewhere, SHEET, [guess]) == [guess]


def test_refined_recognitions_of_colour_and_large_images_are_measured_in_the_same_sheet_frame():
    image = draw(TRUTH)
    big_colour = np.repeat(np.kron(image, np.ones((3, 3), np.uint8))[..., None], 3, axis=2)  # 1800 x 1350 RGB
    small, big = refine_primitives(image, SHEET, GUESS), refine_primitives(big_colour, SHEET, GUESS)
    for a, b in zip(small, big):
        assert pair_error(b, a, Sheet(200, 150)) is not None  # the same place, within the tolerance
    assert pair_error(big[0], TRUTH[0], SHEET) is not None


def test_the_ink_mask_ignores_uneven_light():
    image = draw([Line(20, 75, 180, 75)]).astype(np.float32)
    gradient = np.linspace(0, 120, image.shape[1])[None, :]  # paper from white to mid grey
    ink = ink_mask(np.clip(image - gradient, 0, 255).astype(np.uint8))
    row = round(75 * PX_PER_MM)
    assert ink[row - 1:row + 2, 100:500].any(axis=0).all()  # the whole line
    assert ink[:row - 10].mean() < 0.001 and ink[row + 10:].mean() < 0.001  # and nothing else


def test_circular_runs_and_gap_closing():
    on = span_degrees(350, 20)  # wraps through 0
    assert on.sum() == 30 and runs(on) == [(350, 30)]
    broken = on.copy()
    broken[5:8] = False
    assert len(runs(broken)) == 2 and runs(close_gaps(broken, 4)) == [(350, 30)]
    assert runs(np.ones(360, bool)) == [(0, 360)] and runs(np.zeros(360, bool)) == []


def test_a_primitive_written_twice_is_kept_once_with_the_higher_confidence():
    from cad2program.reading import Recognition
    from cad2program.reading.ink_rules import measured_on, without_repeats

    image = draw([Line(110, 20, 190, 60), Circle(160, 120, 12)])
    twice = Recognition(SHEET, [Line(111, 20, 189, 61), Circle(160, 120, 12), Line(110, 21, 190, 59)],
                        [0.4, 0.9, 0.7], valid=True)
    refined = without_repeats(measured_on(image, twice)[0])
    assert [type(p) for p in refined.primitives] == [Circle, Line] and refined.confidences == [0.9, 0.7]


def test_a_two_point_polyline_on_a_lines_segment_is_a_repeat_and_the_line_stays():
    from cad2program.reading import Recognition
    from cad2program.reading.ink_rules import without_repeats

    line, bent = Line(110, 20, 190, 60), Polyline(((20, 20), (60, 20), (60, 50)), False)
    segment = Polyline(((189.5, 60.5), (110.5, 20)), False)  # the line's segment, ends swapped
    elsewhere = Polyline(((20, 100), (80, 140)), False)  # a two-point polyline on no line
    found = Recognition(SHEET, [line, segment, bent, elsewhere], [0.5, 0.9, 0.8, 0.7], valid=True)
    assert without_repeats(found).primitives == [line, bent, elsewhere]


def test_straight_edged_primitives_without_ink_where_they_should_be_drawn_are_left_out():
    from cad2program.reading import Recognition
    from cad2program.reading.ink_rules import measured_on

    image = draw([Line(110, 20, 190, 60), Circle(160, 120, 12)])
    seen = Recognition(SHEET, [Line(111, 20, 189, 61), Line(20, 100, 80, 140), Circle(160, 120, 12),
                               Polyline(((20, 20), (50, 20), (50, 50)), False)],
                       [0.8, 0.9, 0.7, 0.6], valid=True, spans=[(0, 5), (5, 10), (10, 14), (14, 22)])
    kept, sizes = measured_on(image, seen)
    assert [type(p) for p in kept.primitives] == [Line, Circle]  # nothing drawn under the 2nd line, the polyline
    assert kept.confidences == [0.8, 0.7] and kept.spans == [(0, 5), (10, 14)] and len(sizes) == 2
    assert sizes[0]["ink_share"] > 0.95 and "radius" in sizes[1]


def test_a_circle_seen_where_its_round_is_not_inked_is_left_out():
    from cad2program.reading import Recognition
    from cad2program.reading.ink_rules import without_uninked_circles

    # Two circles side by side, with a line crossing one: the model's third circle between them
    # touches both, but little of its round is ink.
    image = draw([Circle(60, 80, 8), Circle(90, 80, 8), Line(40, 80, 110, 80)])
    seen = Recognition(SHEET, [Circle(60, 80, 8), Circle(75, 80, 6), Line(40, 80, 110, 80), Circle(90, 80, 8)],
                       [0.9, 0.8, 0.7, 0.9], valid=True, spans=[(0, 4), (4, 8), (8, 13), (13, 17)])
    kept = without_uninked_circles(image, seen)
    assert kept.primitives == [seen.primitives[k] for k in (0, 2, 3)]
    assert kept.confidences == [0.9, 0.7, 0.9] and kept.spans == [(0, 4), (8, 13), (13, 17)]


def test_an_outline_no_bigger_than_an_arrowhead_is_left_out():
    from cad2program.reading import Recognition
    from cad2program.reading.ink_rules import measured_on

    arrowhead = Polyline(((60, 120), (66, 122), (60, 124)), True)  # sides under 2 tolerances (8 mm)
    small = Polyline(((100, 100), (110, 100), (105, 108)), True)  # a 10 mm side: a drawn triangle
    image = draw([arrowhead, small], width=3)
    kept, _ = measured_on(image, Recognition(SHEET, [arrowhead, small], [0.9, 0.8], valid=True))
    assert len(kept.primitives) == 1 and pair_error(kept.primitives[0], small, SHEET) is not None


def test_on_an_inferred_sheet_positions_are_re_measured_but_sizes_stay_as_read():
    import dataclasses as dc

    from cad2program.contract import tokenizer
    from cad2program.model.configs import tiny
    from cad2program.model.modelfile import build_model
    from cad2program.reading import Drawing, Recognition, Recognizer, run_stages

    image = draw([Rectangle(20, 15, 50, 30)])
    read = Rectangle(20, 15, 46.5, 30)  # read 46.5 wide; the ink says 50, 3.5 mm off: more than t / 2
    row = np.array(tokenizer.encode_primitive(read, SHEET) + [tokenizer.EOS])
    recognition = Recognition(SHEET, [read], [0.9], valid=True, tokens=row, spans=[(0, len(row) - 1)])
    recognizer = Recognizer(tiny(), build_model(tiny()), read_text=False, second_look=False)
    after_reading = [s for s in recognizer.stages if s.name not in ("read", "drop uninked circles")]

    def refined(sheet_known: bool) -> Recognition:
        drawing = Drawing.of(image, SHEET, recognizer.image_size)
        drawing.sheet_known = sheet_known
        drawing.first.recognition = dc.replace(recognition)
        run_stages(recognizer, [drawing], after_reading)
        return drawing.result

    inferred = refined(sheet_known=False)
    assert inferred.primitives[0].width == 46.5 and inferred.primitives[0].height == 30  # as read
    assert inferred.primitives[0].x + 46.5 / 2 == pytest.approx(45, abs=0.4)  # centred on the ink (a pixel: 0.33 mm)
    known = refined(sheet_known=True)
    assert abs(known.primitives[0].width - 50) <= 1.2  # the ink's evidence moved it (within 3 px)


STEPS = Polyline(((20, 20), (60, 20), (60, 50), (100, 50), (100, 80)), False)
TRIANGLE = Polyline(((130, 30), (185, 40), (150, 75)), True)


@pytest.mark.parametrize("noise", [0.0, 25.0])
def test_a_polyline_is_traced_with_the_corners_the_ink_has_not_the_count_the_model_wrote(noise):
    from cad2program.evaluation.scoring import matched_flags

    # The model's usual polyline mistakes: a corner too few, corners a tolerance or more off, a closed
    # outline written open with its first point again at the end.
    guesses = [Polyline(((22, 18), (58, 26), (104, 52), (98, 83)), False),
               Polyline(((133, 27), (180, 45), (146, 70), (133, 28)), False)]
    traced = refine_primitives(draw([STEPS, TRIANGLE], noise), SHEET, guesses)
    assert [len(p.points) for p in traced] == [5, 3] and [p.closed for p in traced] == [False, True]
    assert matched_flags(traced, [STEPS, TRIANGLE], SHEET) == [True, True]
    tight = 0.5 * 0.02 * max(SHEET.width, SHEET.height)
    assert all(pair_error(p, t, SHEET) <= tight for p, t in zip(traced, [STEPS, TRIANGLE]))


@pytest.mark.parametrize("width", [2, 4, 6])
@pytest.mark.parametrize("truth, guess", [
    (Polyline(((120, 60), (40, 85), (110, 20)), True), Polyline(((118, 62), (43, 83), (108, 23)), True)),
    # a corner of 25 degrees, and the model's far corner 5 tolerances out
    (Polyline(((114, 99), (51, 123), (108, 51)), True), Polyline(((113, 99), (52, 113), (132, 66)), True))])
def test_a_thick_outline_with_a_sharp_corner_is_traced_to_its_tip(truth, guess, width):
    # The ink fills a sharp corner: its skeleton turns short of the tip and leaves clumps and a spur.
    [traced] = refine_primitives(draw([truth], width=width), SHEET, [guess])
    assert len(traced.points) == 3 and traced.closed
    assert pair_error(traced, truth, SHEET) <= 0.5 * 0.02 * max(SHEET.width, SHEET.height)


def test_a_short_side_is_taken_for_a_cut_corner_only_where_the_stroke_turns_back():
    def sides(corners):
        return [(a, (b - a) / np.hypot(*(b - a))) for a, b in zip(corners[:-1], corners[1:])]

    everywhere = np.ones((200, 200), bool)  # ink all round: only the turn decides
    # Down steeply, a short side, then nearly flat: 70 degrees in all, a corner the skeleton keeps.
    shallow = [np.array(c, float) for c in ((20, 20), (35, 65), (50, 61), (110, 62))]
    assert len(with_sharp_corners(shallow, sides(shallow), False, everywhere, 10.0)) == 4
    # Down, a short side, then back up: 160 degrees in all, the tip the skeleton cut off.
    sharp = [np.array(c, float) for c in ((20, 20), (35, 65), (45, 65), (60, 20))]
    merged = with_sharp_corners(sharp, sides(sharp), False, everywhere, 10.0)
    assert len(merged) == 3 and merged[1][1] > 65


@pytest.mark.parametrize("width", [2, 4])
def test_a_drawn_chamfer_near_a_sharp_corner_stays_a_side(width):
    truth = Polyline(((120, 60), (40, 100), (44, 108), (110, 20)), True)  # a 9 mm chamfer; tolerance 4 mm
    [traced] = refine_primitives(draw([truth], width=width), SHEET,
                                 [Polyline(((118, 62), (43, 100), (45, 106), (108, 23)), True)])
    assert len(traced.points) == 4 and pair_error(traced, truth, SHEET) is not None


def test_a_polyline_is_drawn_alone_unless_other_ink_joins_it_or_it_is_arrowhead_sized():
    from cad2program.refine import drawn_alone

    crossed = Polyline(((120, 100), (150, 100), (150, 130)), False)
    arrowhead = Polyline(((60, 120), (66, 122), (60, 124)), True)  # sides under 3 tolerances (12 mm)
    image = draw([STEPS, crossed, Line(140, 90, 140, 110), arrowhead, TRIANGLE])
    # The model's corners a little off, as a second reading writes them: traced, they come back.
    written = [Polyline(((21, 19), (61, 21), (59, 51), (101, 49), (99, 81)), False),
               Polyline(((121, 101), (149, 99), (151, 129)), False), arrowhead,
               Polyline(((131, 31), (184, 41), (149, 74)), True), Line(140, 90, 140, 110)]
    assert drawn_alone(image, SHEET, written) == [True, False, False, True, False]
    # Its corners traced the same, but not its point count: not the polyline drawn there.
    assert drawn_alone(image, SHEET, [Polyline(((20, 20), (60, 20), (60, 50)), False)]) == [False]


def test_a_line_written_across_a_bent_stroke_becomes_the_polyline_the_ink_shows():
    bent = Polyline(((110, 100), (150, 115), (185, 100)), False)  # turns by 43 degrees
    rectangle, straight = Rectangle(20, 20, 60, 40), Line(110, 30, 180, 60)
    image = draw([bent, rectangle, straight])
    guesses = [Line(111, 101, 184, 99), rectangle, Line(21, 20, 79, 21), straight]  # a repeat of a side
    refined = refine_primitives(image, SHEET, guesses)
    assert isinstance(refined[0], Polyline) and pair_error(refined[0], bent, SHEET) is not None
    assert [type(p) for p in refined[1:]] == [Rectangle, Line, Line]


def test_a_hook_shorter_than_the_tolerance_where_a_pen_turned_a_corner_is_not_a_side():
    drawn = Polyline(((100, 40), (150, 40), (152, 42), (150, 80)), False)  # a 2.8 mm hook; tolerance 4 mm
    truth = Polyline(((100, 40), (150, 40), (150, 80)), False)
    [traced] = refine_primitives(draw([drawn]), SHEET, [Polyline(((101, 41), (149, 41), (151, 79)), False)])
    assert len(traced.points) == 3 and pair_error(traced, truth, SHEET) is not None


def test_a_polyline_touching_other_ink_is_not_traced_but_refined_as_the_model_wrote_it():
    from cad2program.refine import Frame, ink_mask as mask, trace_polyline

    crossing = Line(40, 5, 40, 60)  # runs through the first side of the steps: the stroke forks
    image = draw([STEPS, crossing])
    guess = Polyline(((21, 19), (61, 21), (59, 51), (101, 49), (99, 81)), False)
    ink = mask(image)
    assert trace_polyline(guess, ink, Frame(SHEET, ink.shape[1], ink.shape[0]), 4.0) is None
    [refined] = refine_primitives(image, SHEET, [guess])
    assert len(refined.points) == 5 and pair_error(refined, STEPS, SHEET) is not None


def test_an_images_paper_is_kept_with_its_ink_only_at_its_own_size_and_reused_alike():
    """Erasing and the text finder reuse the ink's paper and mask only where they are the image's own,
    and get what they would compute themselves."""
    from cad2program.reading.ocr import ink_text_boxes
    from cad2program.refine import Ink, erase_primitives
    from cad2program.refine.ink import WORKING_SIDE, paper_around

    rng = np.random.default_rng(3)
    small = np.full((300, 400), 235, np.uint8)
    small[100:104, 50:350] = 20  # a stroke
    small[150:160, 60:66] = 30  # a glyph-sized blob
    small = np.clip(small.astype(int) + rng.integers(-8, 8, small.shape), 0, 255).astype(np.uint8)
    ink = Ink.of(small)
    assert ink.at_full_size(small) and np.array_equal(ink.paper, paper_around(small))
    assert np.array_equal(ink.mask, ink_mask(small))
    assert ink_text_boxes(small, ink.mask) == ink_text_boxes(small)
    sheet, found = Sheet(200, 150), [Line(25, 98, 175, 98)]
    assert np.array_equal(erase_primitives(small, sheet, found, ink.paper), erase_primitives(small, sheet, found))

    large = np.full((WORKING_SIDE + 100,) * 2, 235, np.uint8)
    shrunk = Ink.of(large)
    assert not shrunk.at_full_size(large) and shrunk.paper is None and max(shrunk.mask.shape) == WORKING_SIDE
