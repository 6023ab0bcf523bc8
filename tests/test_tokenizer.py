"""The token language: exact round trips, the grammar automaton, and decode errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cad2program.program import Arc, Circle, Line, Polyline, Rectangle, format_program, parse_program
from cad2program.tokenizer import (BOS, CLOSED, DIGIT0, DOT, EOS, GRAMMAR_DONE, GRAMMAR_START, GRAMMAR_TABLE,
                                   OPEN, PAD, SIZE_END, TENTH0, TOKEN_ID, TYPE_ID, VALUE0, VOCAB_SIZE,
                                   TokenizerError, decode, decode_prompt, decode_spans, encode, encode_primitive,
                                   encode_program, grammar_accepts, split_prompt)
from primitive_strategies import drawings


@settings(max_examples=300, deadline=None)
@given(drawings())
def test_encode_decode_round_trip_is_exact_and_grammatical(drawing):
    sheet, primitives = drawing
    tokens = encode_program(primitives)
    assert decode(tokens) == primitives
    assert grammar_accepts(tokens)
    spans = decode_spans(tokens)
    assert [tokens[a:b] for _, a, b in spans] == [encode_primitive(p) for p in primitives]


@settings(max_examples=50, deadline=None)
@given(drawings())
def test_full_sequence_splits_into_prompt_and_program(drawing):
    sheet, primitives = drawing
    prompt, program = split_prompt(encode(sheet, primitives))
    assert prompt[-1] == BOS
    assert decode(program) == primitives
    whole_mm = decode_prompt(prompt)  # the prompt gives the scale in whole millimetres at least
    assert abs(whole_mm.width - sheet.width) < 1 and abs(whole_mm.height - sheet.height) < 1


def test_known_encodings():
    def names(tokens):
        from cad2program.tokenizer import token_name
        return [token_name(t) for t in tokens]

    assert names(encode_primitive(Circle(30, 5.5, 10))) == ["circle", "#30", "#5", ".5", "d2", "d0", "d;"]
    assert names(encode_primitive(Circle(30, 5, 0.1))) == ["circle", "#30", "#5", "d0", "d.", "d2", "d;"]
    assert names(encode_primitive(Rectangle(0, 0, 47.5, 100))) == \
        ["rectangle", "#0", "#0", "d4", "d7", "d.", "d5", "d;", "d1", "d0", "d0", "d;"]
    assert names(encode_primitive(Polyline(points=[(1, 2), (3, 4.1), (0, 0)], closed=True))) == \
        ["polyline", "<closed>", "#1", "#2", "#3", "#4", ".1", "#0", "#0"]


def _random_walk(rng: np.random.Generator, eos_bias: float) -> list[int]:
    """Picks allowed tokens at random from the grammar's start until <eos>."""
    state, tokens = GRAMMAR_START, []
    while state != GRAMMAR_DONE:
        allowed = np.flatnonzero(GRAMMAR_TABLE[state] >= 0)
        assert allowed.size, f"state {state} is a dead end after {tokens}"
        if EOS in allowed and (rng.random() < eos_bias or len(tokens) > 400):
            token = EOS
        else:
            # Pick a token class first, so that rare classes (<eos>, types, tenths) are reached too.
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
    if TENTH0 + 1 <= token <= TENTH0 + 9:
        return "tenth"
    if DIGIT0 <= token <= DIGIT0 + 9:
        return "digit"
    return str(token)


@pytest.mark.parametrize("seed", range(4))
def test_random_walks_through_the_grammar_always_decode(seed):
    rng = np.random.default_rng(seed)
    seen_types = set()
    for _ in range(150):
        tokens = _random_walk(rng, eos_bias=0.2)
        assert grammar_accepts(tokens)
        primitives = decode(tokens)
        seen_types.update(p.TYPE for p in primitives)
        # The decoded primitives parse back from their program text and re-encode to the same tokens.
        assert parse_program(format_program(primitives)) == primitives
        assert encode_program(primitives) == tokens
        for p in primitives:  # what the grammar cannot rule out is left to validation, not to parsing
            if isinstance(p, Polyline):
                assert len(p.points) >= (3 if p.closed else 2)
            if isinstance(p, Arc):
                assert 0 <= p.start_angle < 360 and 0 <= p.end_angle < 360
            if isinstance(p, (Circle, Arc)):
                assert p.radius > 0
            if isinstance(p, Rectangle):
                assert p.width > 0 and p.height > 0
    assert seen_types == {"line", "rectangle", "circle", "arc", "polyline"}


def test_grammar_rejects_malformed_sequences():
    circle = encode_primitive(Circle(30, 5, 10))
    assert grammar_accepts(circle + [EOS])
    assert grammar_accepts(circle + [EOS, PAD, PAD])
    assert not grammar_accepts(circle)  # no <eos>
    assert not grammar_accepts(circle[:-1] + [EOS])  # size without its end
    assert not grammar_accepts([TYPE_ID["circle"], VALUE0 + 1, VALUE0 + 1, DIGIT0, SIZE_END, EOS])  # size 0
    assert not grammar_accepts([TYPE_ID["circle"], VALUE0 + 1, VALUE0 + 1, DIGIT0 + 1, DOT, DIGIT0 + 1,
                                SIZE_END, EOS])  # a diameter of 1.1 is no radius on the 0.1 grid
    assert not grammar_accepts([TYPE_ID["polyline"], CLOSED, VALUE0, VALUE0, VALUE0 + 1, VALUE0 + 1, EOS])
    assert grammar_accepts([TYPE_ID["polyline"], OPEN, VALUE0, VALUE0, VALUE0 + 1, VALUE0 + 1, EOS])
    arc_360 = [TYPE_ID["arc"], VALUE0, VALUE0, DIGIT0 + 1, SIZE_END, VALUE0 + 360, VALUE0 + 1, EOS]
    assert not grammar_accepts(arc_360)
    assert not grammar_accepts([EOS, TYPE_ID["line"]])
    assert not grammar_accepts([TENTH0 + 1, EOS])


DECODE_ERRORS = [
    ([TOKEN_ID["d1"]], r"token 0: expected a primitive type or '<eos>', got 'd1'"),
    ([TYPE_ID["circle"], VALUE0 + 3], r"ends in the middle of a primitive"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, VALUE0 + 3], r"token 3: expected a digit, 'd\.' or 'd;', got '#3'"),
    ([TYPE_ID["circle"], VALUE0 + 3, DIGIT0 + 1], r"token 2: expected a value token, got 'd1'"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, DOT, DIGIT0 + 1, SIZE_END], r"expected a digit"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, DIGIT0 + 1, DOT, SIZE_END], r"expected a digit"),
    ([TYPE_ID["polyline"], VALUE0], r"expected '<open>' or '<closed>'"),
    ([TYPE_ID["line"], VALUE0, VALUE0, VALUE0, EOS], r"expected a value token, got '<eos>'"),
    ([TYPE_ID["circle"], VALUE0 + 3, VALUE0 + 3, DIGIT0 + 1, SIZE_END, VOCAB_SIZE + 5],
     r"got '<unknown \d+>'"),
]


@pytest.mark.parametrize("tokens, message", DECODE_ERRORS)
def test_decode_errors(tokens, message):
    with pytest.raises(TokenizerError, match=message):
        decode(tokens)


def test_decode_stops_at_eos_and_pad():
    circle = encode_primitive(Circle(30, 5, 10))
    assert decode(circle + [EOS] + [TOKEN_ID["d1"]]) == [Circle(30, 5, 10)]
    assert decode(circle + [PAD, PAD]) == [Circle(30, 5, 10)]
    assert decode([]) == []


def test_encode_refuses_values_outside_the_language():
    with pytest.raises(TokenizerError, match="negative"):
        encode_program([Line(-1, 0, 5, 5)])
    with pytest.raises(TokenizerError, match="beyond 500"):
        encode_program([Line(501, 0, 5, 5)])
    with pytest.raises(TokenizerError, match="integer digits"):
        encode_program([Rectangle(0, 0, 1000, 5)])
    with pytest.raises(TokenizerError, match="no '<bos>'"):
        split_prompt([EOS])


def test_line_round_trip_keeps_end_point_order():
    assert decode(encode_program([Line(9.9, 0.1, 0, 500.9)])) == [Line(9.9, 0.1, 0, 500.9)]
    assert decode(encode_program([Arc(1, 2, 3.3, 359.9, 0)])) == [Arc(1, 2, 3.3, 359.9, 0)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, VOCAB_SIZE - 1), max_size=30))
def test_decode_of_arbitrary_tokens_raises_only_tokenizer_errors(tokens):
    try:
        decode(tokens)
    except TokenizerError:
        pass
