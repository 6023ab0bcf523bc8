"""The second look: reading order, erasing what was found, scoring a candidate in its place, adding it."""

from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cad2program.contract import tokenizer
from cad2program.model.configs import tiny
from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet
from cad2program.contract.program_text import reading_order
from cad2program.model.modelfile import build_model
import dataclasses

from cad2program.reading import DEFAULT_SETTINGS, Recognition, Recognizer, run_stages, stages_for
from cad2program.reading.ink_rules import without_uninked_circles
from cad2program.reading.second_look import with_candidates
from cad2program.refine import Frame, erase_primitives, ink_mask


def test_reading_order_is_top_to_bottom_then_left_to_right_and_generated_programs_follow_it():
    from cad2program.synth import GeneratorConfig, make_labels

    top_right, top_left = Circle(80, 70, 10), Rectangle(10, 60, 20, 20)  # both reach y = 80
    below = Line(5, 40, 90, 30)
    assert sorted([below, top_right, top_left], key=reading_order) == [top_left, top_right, below]
    assert reading_order(Arc(50, 50, 5, 0, 90)) == (-55, 50)  # an arc by its circle's top
    for index in range(5):
        _, primitives, _ = make_labels(3, index, GeneratorConfig())
        keys = [reading_order(p) for p in primitives]
        assert keys == sorted(keys)


def test_erasing_a_primitive_leaves_no_ink_along_it_and_the_rest_untouched():
    sheet = Sheet(200, 100)
    image = np.full((250, 500), 255, np.uint8)
    frame = Frame(sheet, 500, 250)
    line, circle = Line(20, 20, 90, 80), Circle(150, 50, 25)
    to_px = lambda x, y: tuple(round(v) for v in frame.to_px(x, y))  # noqa: E731
    cv2.line(image, to_px(line.x1, line.y1), to_px(line.x2, line.y2), 0, 3)
    cv2.circle(image, to_px(circle.x, circle.y), round(circle.radius * 2.5), 0, 3)
    erased = erase_primitives(image, sheet, [line])
    before, after = ink_mask(image), ink_mask(erased)
    assert before[:, :250].sum() > 400 and after[:, :250].sum() == 0  # the line's half: nothing left
    assert (after[:, 250:] == before[:, 250:]).all()  # the circle's half: as it was
    assert erase_primitives(image, sheet, []).tolist() == image.tolist()


def _full_forward_logprob(recognizer: Recognizer, memory, prefix: list[int], tokens: list[int]) -> float:
    graphdef, params = recognizer.split
    from flax import nnx

    model = nnx.merge(graphdef, params)
    logits, _ = model.decode_full(memory, jnp.asarray([prefix + tokens]))
    log_probs = jax.nn.log_softmax(logits[0].astype(jnp.float32), axis=-1)
    return sum(float(log_probs[len(prefix) - 1 + i, t]) for i, t in enumerate(tokens))


def test_a_candidate_is_scored_where_reading_order_puts_it_as_a_full_forward_pass_would():
    from cad2program.model.decode import embed_images

    recognizer = Recognizer(tiny(), build_model(tiny(), seed=3), second_look=False)
    sheet = Sheet(200, 100)
    top, bottom = Rectangle(20, 60, 30, 20), Circle(150, 25, 10)  # written in reading order
    row, spans = [], []
    for primitive in (top, bottom):
        tokens = tokenizer.encode_primitive(primitive, sheet)
        spans.append((len(row), len(row) + len(tokens)))
        row += tokens
    images = np.random.default_rng(0).random((1, recognizer.image_size, recognizer.image_size, 1), np.float32)
    memory = embed_images(recognizer.split, images)
    recognition = Recognition(sheet, [top, bottom], [0.9, 0.9], valid=True, tokens=np.array(row), spans=spans,
                              memory=memory[0])
    middle, last = Line(10, 50, 190, 45), Polyline(((10, 10), (50, 5), (90, 12)), False)
    got = recognizer._slot_logprobs(recognition, [middle, last])
    prompt = tokenizer.encode_prompt(sheet)
    between = prompt + row[:spans[1][0]]  # after the rectangle, before the circle
    assert got[0] == pytest.approx(_full_forward_logprob(
        recognizer, memory, between, tokenizer.encode_primitive(middle, sheet)), abs=2e-3)
    assert got[1] == pytest.approx(_full_forward_logprob(
        recognizer, memory, prompt + row, tokenizer.encode_primitive(last, sheet)), abs=2e-3)


def test_candidates_at_or_above_the_threshold_are_added_once_and_the_rest_left_out():
    sheet = Sheet(200, 100)
    found = Recognition(sheet, [Circle(50, 50, 10)], [0.8], valid=True)
    likely, unlikely = Line(10, 10, 100, 10), Rectangle(120, 20, 30, 30)
    repeat = Line(10.5, 10, 100, 10.5)  # matches `likely` within the tolerance
    result = with_candidates(found, [(likely, 0.7, -5.0), (unlikely, 0.9, -40.0), (repeat, 0.6, -3.0)], -17.5)
    assert result.primitives == [Circle(50, 50, 10), likely] and result.confidences == [0.8, 0.7]
    assert with_candidates(found, [(unlikely, 0.9, -40.0)], -17.5) is found


def test_only_a_candidate_drawn_alone_on_the_ink_gains_the_bonus():
    from cad2program.reading.second_look import with_ink_evidence
    from cad2program.reading.settings import DEFAULT_SETTINGS

    sheet = Sheet(100, 100)  # 400 x 400 px, y up
    image = np.full((400, 400), 255, np.uint8)
    alone = Polyline(((10, 90), (50, 90), (50, 60)), False)
    cv2.polylines(image, [np.array([(40, 40), (200, 40), (200, 160)], np.int32)], False, 0, 3)
    candidates = [(alone, 0.6, -30.0), (Line(10, 20, 90, 20), 0.9, -12.0)]
    scored = with_ink_evidence(image, sheet, candidates)
    assert [s for _, _, s in scored] == [-30.0 + DEFAULT_SETTINGS.drawn_alone_bonus, -12.0]
    assert [p for p, _, _ in scored] == [alone, Line(10, 20, 90, 20)]


def test_with_nothing_found_the_second_look_finds_what_one_look_does_and_recognize_adds_what_scores_enough(
        monkeypatch):
    from cad2program.synth import GeneratorConfig, make_example

    example = make_example(13, 0, GeneratorConfig(long_side_px=256, part_share=0.0))  # one the random model reads
    one_look = Recognizer(tiny(), build_model(tiny(), seed=5), read_text=False, second_look=False)
    until_joined = stages_for(one_look, until="join lines to arcs")
    [first] = one_look.recognize([example.image], [example.sheet], stages=until_joined)
    before_last = stages_for(one_look, until="drop uninked circles")
    [measured] = one_look.recognize([example.image], [example.sheet], stages=before_last)
    assert first.primitives and measured.primitives  # the random model's reading, measured on the ink
    # ... and what is left of it once the circles drawn nowhere are left out, last
    assert without_uninked_circles(example.image, measured).primitives == first.primitives

    two_looks = Recognizer(tiny(), one_look.split, read_text=False, second_look=True)
    stages = stages_for(two_looks)
    names = [s.name for s in stages]
    second_look = stages[names.index("erase found"):names.index("weigh ink evidence")]
    # Nothing erased: the second reading is the first one (its segments as the model wrote them:
    # only the first reading's are typed again), every primitive of it new, each scored.
    [drawing] = two_looks.read([example.image], [example.sheet], stages=stages[:names.index("erase found")])
    drawing.first.recognition = Recognition(example.sheet, [], [], valid=True, tokens=np.zeros(0, np.int32),
                                            memory=drawing.first.recognition.memory)
    run_stages(two_looks, [drawing], second_look)
    untyped = [s for s in before_last if s.name != "type segments" and names.index(s.name) < names.index("erase found")]
    [measured] = one_look.recognize([example.image], [example.sheet], stages=untyped)
    candidates = drawing.candidates
    assert [p for p, _, _ in candidates] == measured.primitives
    assert [c for _, c, _ in candidates] == pytest.approx(measured.confidences)
    assert all(isinstance(score, float) and score < 0 for _, _, score in candidates)

    extra = Line(5, 5, 60, 5)
    for threshold, added in ((-20.0, [extra]), (-10.0, [])):
        reader = Recognizer(tiny(), one_look.split, read_text=False, second_look=True,
                            settings=dataclasses.replace(DEFAULT_SETTINGS, second_look_min_logprob=threshold,
                                                         lone_round_inked=2.0))  # the second look alone
        monkeypatch.setattr(reader, "scored_candidates", lambda first, new: [(extra, 0.5, -17.0)])
        [more] = reader.recognize([example.image], [example.sheet])
        assert more.primitives == first.primitives + added


def _written(sheet: Sheet, primitives) -> tuple[list[int], list[tuple[int, int]]]:
    """A token row as the model writes it (ending with `<eos>`) and each primitive's span in it."""
    row, spans = [], []
    for primitive in primitives:
        tokens = tokenizer.encode_primitive(primitive, sheet)
        spans.append((len(row), len(row) + len(tokens)))
        row += tokens
    return row + [tokenizer.EOS], spans


def test_a_segment_takes_the_type_a_full_forward_pass_finds_likelier_in_its_place():
    from cad2program.model.decode import embed_images

    sheet = Sheet(200, 100)
    rectangle, line = Rectangle(20, 60, 30, 20), Line(10, 50, 190, 45)
    two_points = Polyline(((30, 30), (60, 10)), False)
    for seed in range(3):
        recognizer = Recognizer(tiny(), build_model(tiny(), seed=seed), second_look=False)
        row, spans = _written(sheet, [rectangle, line, two_points])
        images = np.random.default_rng(seed).random((1, recognizer.image_size, recognizer.image_size, 1), np.float32)
        memory = embed_images(recognizer.split, images)
        recognition = Recognition(sheet, [rectangle, line, two_points], [0.9] * 3, valid=True, tokens=np.array(row),
                                  spans=spans, memory=memory[0])
        typed = recognizer.with_segment_types(recognition)
        assert typed.primitives[0] == rectangle and typed.spans == spans
        prompt = tokenizer.encode_prompt(sheet)
        for k, segment in ((1, line), (2, Line(30, 30, 60, 10))):
            before, after = prompt + row[:spans[k][0]], [row[spans[k][1]]]
            ends = ((segment.x1, segment.y1), (segment.x2, segment.y2))
            score = lambda p: _full_forward_logprob(  # noqa: E731
                recognizer, memory, before, tokenizer.encode_primitive(p, sheet) + after)
            as_line = np.logaddexp(score(segment), score(Line(*ends[1], *ends[0])))
            as_polyline = np.logaddexp(score(Polyline(ends, False)), score(Polyline(ends[::-1], False)))
            assert abs(as_line - as_polyline) > 1e-2  # the random model is not undecided here
            assert typed.primitives[k] == (segment if as_line > as_polyline else Polyline(ends, False))


def test_segments_are_retyped_both_ways_and_everything_else_is_left_as_it_is(monkeypatch):
    sheet = Sheet(200, 100)
    recognizer = Recognizer(tiny(), build_model(tiny(), seed=0), second_look=False)
    circle, line, two_points = Circle(50, 50, 10), Line(10, 50, 190, 45), Polyline(((30, 30), (60, 10)), False)
    three_points = Polyline(((100, 30), (120, 10), (150, 30)), False)
    primitives = [circle, line, two_points, three_points]
    row, spans = _written(sheet, primitives)
    recognition = Recognition(sheet, primitives, [0.9] * 4, valid=True, tokens=np.array(row), spans=spans,
                              memory=np.zeros((4, 8), np.float32))
    seen = []

    # Per segment: (line, line reversed, polyline, polyline reversed); the first likelier as a
    # polyline, the second as a line.
    def scores(self, recognition, starts, continuations, width):
        seen.append(list(starts))
        return np.array([-3.0, -4.0, 0.0, -1.0] + [0.0, -1.0, -3.0, -4.0], np.float32)

    monkeypatch.setattr(Recognizer, "scored_continuations", scores)
    typed = recognizer.with_segment_types(recognition)
    assert seen == [[spans[1][0]] * 4 + [spans[2][0]] * 4]  # each segment's variants from its own place
    assert typed.primitives == [circle, Polyline(((10, 50), (190, 45)), False), Line(30, 30, 60, 10), three_points]
    assert typed.confidences == recognition.confidences and typed.spans == spans
    # Nothing to score against (no tokens: a reading built by hand), or no segment: as it was.
    assert recognizer.with_segment_types(Recognition(sheet, primitives, [0.9] * 4, valid=True)).primitives == primitives
    only_circle = Recognition(sheet, [circle], [0.9], valid=True, tokens=np.array(row), spans=spans[:1])
    assert recognizer.with_segment_types(only_circle) is only_circle
