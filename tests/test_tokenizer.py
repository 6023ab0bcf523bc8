"""The token language: round trips under the contract's matching, the grammar automaton, decode errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle, Sheet, program_problems
from cad2program.contract.program_text import format_program, parse_program
from cad2program.evaluation.scoring import score_drawing
from cad2program.contract.tokenizer import (BOS, CLOSED, DIGIT0, DOT, EOS, GRAMMAR_AXES, GRAMMAR_DONE, GRAMMAR_START,
                                            GRAMMAR_TABLE, OPEN, PAD, SIZE_END, TOKEN_ID, TYPE_ID, VALUE0, VOCAB_SIZE,
                                            Grid, TokenizerError, decode, decode_prompt, decode_spans, encode,
                                            encode_primitive, encode_program, grammar_accepts, split_prompt, token_name,
                                            value_limits)
from primitive_strategies import drawings

SHEET = Sheet(200, 150)  # grid step 0.4 mm


@settings(max_examples=300, deadline=None)
@given(drawings())
def test_round_trip_matches_every_primitive_with_exact_sizes(drawing):
    """Positions are quantised to S/500, far inside the matching tolerance S/50; sizes are exact."""
    sheet, primitives = drawing
    tokens = encode_program(sheet, primitives)
    assert grammar_accepts(tokens)
    decoded = decode(tokens, sheet)
    assert [p.TYPE for p in decoded] == [p.TYPE for p in primitives]
    assert program_problems(decoded, sheet) == []
    result = score_drawing(decoded, primitives, sheet)
    assert len(result["pairs"]) == len(primitives)
    assert result["size_exact"] == result["size_fields"]
    spans = decode_spans(tokens, sheet)
    assert [tokens[a:b] for _, a, b in spans] == [encode_primitive(p, sheet) for p in primitives]


@settings(max_examples=50, deadline=None)
@given(drawings())
def test_full_sequence_splits_into_prompt_and_program(drawing):
    sheet, primitives = drawing
    prompt, program = split_prompt(encode(sheet, primitives))
    assert prompt[-1] == BOS
    assert program == encode_program(sheet, primitives)
    whole_mm = decode_prompt(prompt)  # the prompt gives the sheet in whole millimetres
    assert abs(whole_mm.width - sheet.width) <= 0.5 and abs(whole_mm.height - sheet.height) <= 0.5


def names(tokens):
    return [token_name(t) for t in tokens]


def test_known_encodings():
    # On 200 x 150 mm the grid step is 0.4 mm; y counts from the top edge (150 mm).
    assert names(encode_primitive(Circle(30, 5.2, 10), SHEET)) == \
        ["circle", "#75", "#362", "#25", "d2", "d0", "d;"]  # measured radius 25 steps, read diameter 20
    assert names(encode_primitive(Rectangle(0, 0, 47.5, 100), SHEET)) == \
        ["rectangle", "#0", "#125", "#119", "#375", "d4", "d7", "d.", "d5", "d;", "d1", "d0", "d0", "d;"]
    assert names(encode_primitive(Arc(20, 20, 5, 359.6, 90.2), SHEET)) == \
        ["arc", "#50", "#325", "#12", "d5", "d;", "#0", "#90"]
    assert names(encode_primitive(Polyline(points=[(1, 2), (3, 4.1), (0, 0)], closed=True), SHEET)) == \
        ["polyline", "<closed>", "#2", "#370", "#8", "#365", "#0", "#375"]


def test_read_size_wins_when_it_agrees_with_the_ink_and_the_measure_when_it_does_not():
    circle = encode_primitive(Circle(100, 74.8, 10), SHEET)
    assert decode(circle, SHEET) == [Circle(100, 74.8, 10)]
    misread = circle[:4] + [DIGIT0 + 7, DIGIT0, SIZE_END]  # "Ø70" beside a circle of radius 10
    assert decode(misread, SHEET) == [Circle(100, 74.8, 10)]  # the measured radius, 25 steps
    close = circle[:4] + [DIGIT0 + 2, DIGIT0 + 4, SIZE_END]  # "Ø24": within the tolerance of the ink
    assert decode(close, SHEET) == [Circle(100, 74.8, 12)]


def test_grid_rounding_never_yields_an_invalid_primitive():
    line = [TYPE_ID["line"], VALUE0 + 7, VALUE0 + 7, VALUE0 + 7, VALUE0 + 7]
    arc = [TYPE_ID["arc"], VALUE0 + 5, VALUE0 + 5, VALUE0 + 3, DIGIT0 + 1, SIZE_END, VALUE0 + 9, VALUE0 + 9]
    rect = [TYPE_ID["rectangle"], VALUE0 + 500, VALUE0, VALUE0 + 500, VALUE0 + 375, DIGIT0 + 9, SIZE_END,
            DIGIT0 + 9, SIZE_END]  # zero width on the right edge, a read width that would leave the sheet
    decoded = decode(line + arc + rect, SHEET)
    assert program_problems(decoded, SHEET) == []
    assert decoded[0] != Line(2.8, 147.2, 2.8, 147.2) and decoded[1].end_angle == 10


def _random_walk(rng: np.random.Generator, eos_bias: float, limits) -> list[int]:
    """Picks allowed tokens at random from the grammar's start until <eos>, positions on the sheet."""
    state, tokens = GRAMMAR_START, []
    while state != GRAMMAR_DONE:
        allowed = np.flatnonzero(GRAMMAR_TABLE[state] >= 0)
        if GRAMMAR_AXES[state] >= 0:
            allowed = allowed[(allowed < VALUE0) | (allowed <= limits[GRAMMAR_AXES[state]])]
        assert allowed.size, f"state {state} is a dead end after {tokens}"
        if EOS in allowed and (rng.random() < eos_bias or len(tokens) > 400):
            token = EOS
        else:
            # Pick a token class first, so that rare classes (<eos>, types) are reached too.
            classes = {}
            for t in allowed:
                classes.setdefault(_token_class(int(t)), []).append(int(t))
            group = list(classes.values())[rng.integers(len(classes))]
            token = group[rng.integers(len(group))]
        tokens.append(token)
        state = int(GRAMMAR_TABLE[state, token])
    return tokens


def _token_class(token: int) -> str:
    if VALUE0 <= token <= VALUE0 + 500:
        return "value"
    if DIGIT0 <= token <= DIGIT0 + 9:
        return "digit"
    return str(token)


@pytest.mark.parametrize("seed", range(4))
def test_random_walks_through_the_grammar_decode_to_valid_programs(seed):
    rng = np.random.default_rng(seed)
    sheet = [SHEET, Sheet(500, 250), Sheet(50, 100), Sheet(123.4, 99.9)][seed]
    seen_types = set()
    for _ in range(150):
        tokens = _random_walk(rng, eos_bias=0.2, limits=value_limits(sheet))
        assert grammar_accepts(tokens)
        primitives = decode(tokens, sheet)
        seen_types.update(p.TYPE for p in primitives)
        assert program_problems(primitives, sheet) == []  # constrained decoding -> a valid program
        assert parse_program(format_program(primitives)) == primitives
    assert seen_types == {"line", "rectangle", "circle", "arc", "polyline"}


def test_value_limits_keep_positions_on_the_sheet():
    for sheet in (SHEET, Sheet(50, 100), Sheet(123.4, 99.9)):
        grid, (x_max, y_max) = Grid(sheet), value_limits(sheet)
        assert grid.to_mm(x_max - VALUE0, 0) <= sheet.width and grid.to_mm(y_max - VALUE0, 1) >= 0
        assert max(x_max, y_max) == VALUE0 + 500


def test_grammar_rejects_malformed_sequences():
    circle = encode_primitive(Circle(30, 5, 10), SHEET)
    assert grammar_accepts(circle + [EOS])
    assert grammar_accepts(circle + [EOS, PAD, PAD])
    assert not grammar_accepts(circle)  # no <eos>
    assert not grammar_accepts(circle[:-1] + [EOS])  # size without its end
    assert not grammar_accepts([TYPE_ID["circle"], VALUE0 + 1, VALUE0 + 1, VALUE0, DIGIT0, SIZE_END, EOS])  # 0
    assert not grammar_accepts([TYPE_ID["circle"], VALUE0 + 1, VALUE0 + 1, VALUE0, DIGIT0 + 1, DOT, DIGIT0 + 1,
                                SIZE_END, EOS])  # a diameter of 1.1 is no radius on the 0.1 grid
    assert not grammar_accepts([TYPE_ID["polyline"], CLOSED, VALUE0, VALUE0, VALUE0 + 1, VALUE0 + 1, EOS])
    assert grammar_accepts([TYPE_ID["polyline"], OPEN, VALUE0, VALUE0, VALUE0 + 1, VALUE0 + 1, EOS])
    arc_360 = [TYPE_ID["arc"], VALUE0, VALUE0, VALUE0, DIGIT0 + 1, SIZE_END, VALUE0 + 360, VALUE0 + 1, EOS]
    assert not grammar_accepts(arc_360)
    assert not grammar_accepts([EOS, TYPE_ID["line"]])


DECODE_ERRORS = [
    ([TOKEN_ID["d1"]], r"token 0: expected a primitive type or '<eos>', got 'd1'"),
    ([TYPE_ID["circle"], VALUE0 + 3], r"ends in the middle of a primitive"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, VALUE0 + 3, VALUE0 + 3],
     r"token 4: expected a digit, 'd\.' or 'd;', got '#3'"),
    ([TYPE_ID["circle"], VALUE0 + 3, DIGIT0 + 1], r"token 2: expected a value token, got 'd1'"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, VALUE0, DOT, DIGIT0 + 1, SIZE_END], r"expected a digit"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, VALUE0, DIGIT0 + 1, DOT, SIZE_END], r"expected a digit"),
    ([TYPE_ID["polyline"], VALUE0], r"expected '<open>' or '<closed>'"),
    ([TYPE_ID["line"], VALUE0, VALUE0, VALUE0, EOS], r"expected a value token, got '<eos>'"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, VALUE0, DIGIT0 + 1, SIZE_END, VOCAB_SIZE + 5],
     r"got '<unknown \d+>'"),
]


@pytest.mark.parametrize("tokens, message", DECODE_ERRORS)
def test_decode_errors(tokens, message):
    with pytest.raises(TokenizerError, match=message):
        decode(tokens, SHEET)


def test_decode_stops_at_eos_and_pad():
    circle = encode_primitive(Circle(30, 5.2, 10), SHEET)
    assert decode(circle + [EOS] + [TOKEN_ID["d1"]], SHEET) == [Circle(30, 5.2, 10)]
    assert decode(circle + [PAD, PAD], SHEET) == [Circle(30, 5.2, 10)]
    assert decode([], SHEET) == []


def test_encode_clips_positions_to_the_sheet_and_refuses_sizes_it_cannot_write():
    assert decode(encode_program(SHEET, [Line(-1, 0, 5, 5)]), SHEET) == [Line(0, 0, 4.8, 5.2)]
    with pytest.raises(TokenizerError, match="integer digits"):
        encode_program(SHEET, [Rectangle(0, 0, 1000, 5)])
    with pytest.raises(TokenizerError, match="no '<bos>'"):
        split_prompt([EOS])


def test_line_round_trip_keeps_end_point_order():
    assert decode(encode_program(SHEET, [Line(200, 0.1, 0, 150)]), SHEET) == [Line(200, 0, 0, 150)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=30))
def test_decode_of_arbitrary_tokens_raises_only_tokenizer_errors(tokens):
    try:
        decode(tokens, SHEET)
    except TokenizerError:
        pass
