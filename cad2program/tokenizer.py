"""Tokens of the program language, and its grammar as a table for constrained decoding.

How numbers become tokens, and why:

- **Coordinates and angles** (x, y, x1..y2, polyline points, arc angles) are read off the ink, as
  positions. Each is one *value token* for the whole millimetre (`#0` .. `#500`) plus, only when the
  tenth is not zero, one *tenth token* (`.1` .. `.9`). A position is then one classification step
  over a grid (as in Pix2Seq), and most coordinates cost a single token.
- **Sizes** (width, height, radius) are read off the annotation text (`40`, `Ø20`, `R5`), so they are
  written as the *digits* a drafter writes: `d4 d7 d; ` for 47, `d4 d7 d. d5 d;` for 47.5, ended
  by `d;`. One digit token per glyph lets the model learn ten glyph classes that every value shares,
  instead of 5,000 value classes that each need their own examples: reading generalises to values
  it has never seen.
- A circle is dimensioned by its diameter (`Ø20`) and an arc by its radius (`R5`), so a circle's
  radius is written as the digits of its *diameter* (radius 10 -> `d2 d0 d;`) and halved on decoding:
  the tokens copy the glyphs on the sheet instead of asking the model to do arithmetic.
- Field names and punctuation carry no information (every type has a fixed field order), so the
  token stream leaves them out; program text is formatted from the primitives.

A sequence is `<sheet> W H <bos> primitive ... <eos>`, where W, H are the sheet's sides as value
tokens: the model is told the sheet so that it can write coordinates in mm.

`grammar_table()` compiles the language into a deterministic automaton, `table[state, token]` = next
state or -1. The decoder masks every token that would leave the grammar, so every output parses.
This module knows nothing about the model.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from cad2program.program import (Arc, Circle, Line, Polyline, Primitive, ProgramError, Rectangle,
                                 Sheet, TYPE_NAMES, field_names, quantize)

MAX_VALUE = 500  # the contract's largest sheet side, in mm
MAX_SIZE_DIGITS = 3  # integer digits of a size: at most 500


class TokenizerError(ValueError):
    """A token sequence (or a value) that the program language cannot express."""


def _build_vocab() -> list[str]:
    vocab = ["<pad>", "<bos>", "<eos>", "<sheet>"]
    vocab += list(TYPE_NAMES)
    vocab += ["<open>", "<closed>"]
    vocab += [f"#{v}" for v in range(MAX_VALUE + 1)]
    vocab += [f".{d}" for d in range(1, 10)]
    vocab += [f"d{d}" for d in range(10)] + ["d.", "d;"]
    return vocab


VOCAB: tuple[str, ...] = tuple(_build_vocab())
TOKEN_ID: dict[str, int] = {t: i for i, t in enumerate(VOCAB)}
PAD, BOS, EOS, SHEET = (TOKEN_ID[t] for t in ("<pad>", "<bos>", "<eos>", "<sheet>"))
OPEN, CLOSED = TOKEN_ID["<open>"], TOKEN_ID["<closed>"]
TYPE_ID = {name: TOKEN_ID[name] for name in TYPE_NAMES}
ID_TYPE = {i: name for name, i in TYPE_ID.items()}
VALUE0 = TOKEN_ID["#0"]  # value v is VALUE0 + v
TENTH0 = TOKEN_ID[".1"] - 1  # tenth d is TENTH0 + d, d in 1..9
DIGIT0 = TOKEN_ID["d0"]
DOT = TOKEN_ID["d."]
SIZE_END = TOKEN_ID["d;"]
VOCAB_SIZE = len(VOCAB)

SIZE_FIELDS = {"width", "height", "radius"}
ANGLE_FIELDS = {"start_angle", "end_angle"}


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------


def _tenths(value: float, where: str) -> int:
    tenths = int(round(quantize(value, where) * 10))
    if tenths < 0:
        raise TokenizerError(f"{where}: negative values are outside the contract ({value})")
    return tenths


def encode_coordinate(value: float, where: str = "value") -> list[int]:
    tenths = _tenths(value, where)
    whole, tenth = divmod(tenths, 10)
    if whole > MAX_VALUE:
        raise TokenizerError(f"{where}: {value} is beyond {MAX_VALUE} mm, the largest sheet side")
    return [VALUE0 + whole] + ([TENTH0 + tenth] if tenth else [])


def encode_size(value: float, where: str = "size") -> list[int]:
    tenths = _tenths(value, where)
    whole, tenth = divmod(tenths, 10)
    if len(str(whole)) > MAX_SIZE_DIGITS:
        raise TokenizerError(f"{where}: {value} has more than {MAX_SIZE_DIGITS} integer digits")
    tokens = [DIGIT0 + int(c) for c in str(whole)]
    if tenth:
        tokens += [DOT, DIGIT0 + tenth]
    return tokens + [SIZE_END]


def encode_field(type_name: str, field: str, value: float, where: str) -> list[int]:
    if field not in SIZE_FIELDS:
        return encode_coordinate(value, where)
    if type_name == "circle":  # written as the diameter, see the module docstring
        return encode_size(round(2 * value, 1), where)
    return encode_size(value, where)


def encode_primitive(primitive: Primitive) -> list[int]:
    tokens = [TYPE_ID[primitive.TYPE]]
    if isinstance(primitive, Polyline):
        tokens.append(CLOSED if primitive.closed else OPEN)
        for i, (x, y) in enumerate(primitive.points):
            tokens += encode_coordinate(x, f"polyline.points[{i}][0]")
            tokens += encode_coordinate(y, f"polyline.points[{i}][1]")
        return tokens
    for field in field_names(primitive.TYPE):
        tokens += encode_field(primitive.TYPE, field, getattr(primitive, field), f"{primitive.TYPE}.{field}")
    return tokens


PROMPT_LENGTH = 4


def encode_prompt(sheet: Sheet) -> list[int]:
    """`<sheet> W H <bos>`: what the decoder is given before it writes the program.

    The sides are rounded to whole millimetres (the model needs the scale, not its tenths), which
    gives every prompt the same length, so a batch of drawings decodes in lockstep.
    """
    sides = [min(max(int(round(side)), 1), MAX_VALUE) for side in (sheet.width, sheet.height)]
    return [SHEET, VALUE0 + sides[0], VALUE0 + sides[1], BOS]


def value_limits(sheet: Sheet) -> tuple[int, int]:
    """The largest value token ids a coordinate may take on this sheet, for x and for y."""
    return (VALUE0 + min(int(sheet.width), MAX_VALUE), VALUE0 + min(int(sheet.height), MAX_VALUE))


def encode_program(primitives: Sequence[Primitive]) -> list[int]:
    """The program's tokens, ending with `<eos>` (without the prompt)."""
    tokens: list[int] = []
    for primitive in primitives:
        tokens += encode_primitive(primitive)
    return tokens + [EOS]


def encode(sheet: Sheet, primitives: Sequence[Primitive]) -> list[int]:
    return encode_prompt(sheet) + encode_program(primitives)


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Reader:
    tokens: Sequence[int]
    pos: int = 0

    def peek(self) -> int | None:
        return int(self.tokens[self.pos]) if self.pos < len(self.tokens) else None

    def take(self) -> int:
        token = self.peek()
        if token is None:
            raise TokenizerError("the token sequence ends in the middle of a primitive")
        self.pos += 1
        return token

    def fail(self, expected: str, token: int | None = None) -> TokenizerError:
        name = "the end" if token is None else repr(token_name(token))
        return TokenizerError(f"token {self.pos}: expected {expected}, got {name}")

    def coordinate(self) -> float:
        token = self.take()
        if not VALUE0 <= token <= VALUE0 + MAX_VALUE:
            self.pos -= 1
            raise self.fail("a value token", token)
        value = float(token - VALUE0)
        nxt = self.peek()
        if nxt is not None and TENTH0 + 1 <= nxt <= TENTH0 + 9:
            self.pos += 1
            value += (nxt - TENTH0) / 10
        return round(value, 1)

    def size(self) -> float:
        text = ""
        while True:
            token = self.take()
            if DIGIT0 <= token <= DIGIT0 + 9:
                text += str(token - DIGIT0)
            elif token == DOT and "." not in text and text:
                text += "."
            elif token == SIZE_END and text and not text.endswith("."):
                return float(text)
            else:
                self.pos -= 1
                raise self.fail("a digit, 'd.' or 'd;'", token)


def token_name(token: int) -> str:
    return VOCAB[token] if 0 <= token < VOCAB_SIZE else f"<unknown {token}>"


def decode_spans(tokens: Sequence[int]) -> list[tuple[Primitive, int, int]]:
    """Program tokens (after `<bos>`) -> (primitive, first token, end token) triples.

    Stops at `<eos>` or `<pad>`; anything else out of the grammar raises TokenizerError.
    """
    reader = _Reader(tokens)
    out = []
    while True:
        start = reader.pos
        token = reader.peek()
        if token is None or token in (EOS, PAD):
            return out
        if token not in ID_TYPE:
            raise reader.fail("a primitive type or '<eos>'", token)
        reader.pos += 1
        type_name = ID_TYPE[token]
        try:
            if type_name == "polyline":
                flag = reader.take()
                if flag not in (OPEN, CLOSED):
                    reader.pos -= 1
                    raise reader.fail("'<open>' or '<closed>'", flag)
                points = []
                while reader.peek() is not None and VALUE0 <= reader.peek() <= VALUE0 + MAX_VALUE:
                    points.append((reader.coordinate(), reader.coordinate()))
                primitive = Polyline(points=points, closed=flag == CLOSED)
            else:
                values = {}
                for field in field_names(type_name):
                    values[field] = reader.size() if field in SIZE_FIELDS else reader.coordinate()
                if type_name == "circle":  # the tokens hold the diameter
                    values["radius"] = round(values["radius"] / 2, 1)
                primitive = {"line": Line, "rectangle": Rectangle, "circle": Circle,
                             "arc": Arc}[type_name](**values)
        except ProgramError as err:
            raise TokenizerError(f"token {start}: {err}") from None
        out.append((primitive, start, reader.pos))


def decode(tokens: Sequence[int]) -> list[Primitive]:
    return [p for p, _, _ in decode_spans(tokens)]


def decode_prompt(tokens: Sequence[int]) -> Sheet:
    reader = _Reader(tokens)
    if reader.take() != SHEET:
        raise reader.fail("'<sheet>'")
    sheet = Sheet(reader.coordinate(), reader.coordinate())
    if reader.take() != BOS:
        raise reader.fail("'<bos>'")
    return sheet


def split_prompt(tokens: Sequence[int]) -> tuple[list[int], list[int]]:
    """A full sequence -> (prompt up to and including `<bos>`, program tokens)."""
    tokens = list(tokens)
    if BOS not in tokens:
        raise TokenizerError("no '<bos>' in the sequence")
    cut = tokens.index(BOS) + 1
    return tokens[:cut], tokens[cut:]


# ----------------------------------------------------------------------------------------------
# Grammar automaton
# ----------------------------------------------------------------------------------------------


class _Grammar:
    """Builds `table[state, token] -> next state` for the program language.

    A coordinate is a value token optionally followed by a tenth token, so the state after a value
    token accepts a tenth *or* whatever its successor accepts. Such "also accepts" links are recorded
    as merges and resolved at the end, so states can be wired in any order (the automaton has loops:
    every primitive returns to the state between primitives).
    """

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.merges: list[tuple[int, int]] = []
        self.axes: list[int] = []  # per state: the sheet axis its value tokens measure (0 x, 1 y, -1 none)

    def new(self) -> int:
        self.rows.append(np.full(VOCAB_SIZE, -1, np.int32))
        self.axes.append(-1)
        return len(self.rows) - 1

    def allow(self, state: int, tokens, target: int):
        self.rows[state][np.asarray(list(tokens), dtype=np.int64)] = target

    def coordinate(self, then: int, max_whole: int = MAX_VALUE, axis: int = -1) -> int:
        """States that read one coordinate (on sheet `axis`) and continue at `then`; returns the entry."""
        after_whole = self.new()
        self.allow(after_whole, range(TENTH0 + 1, TENTH0 + 10), then)
        self.merges.append((after_whole, then))
        entry = self.new()
        self.allow(entry, range(VALUE0, VALUE0 + max_whole + 1), after_whole)
        self.axes[entry] = axis
        return entry

    def size(self, then: int, even_tenth: bool = False) -> int:
        """States that read one size > 0 in canonical digits, then `d;`, continuing at `then`.

        `even_tenth`: a diameter, twice a value on the 0.1 grid, can only end in .2, .4, .6 or .8.
        """
        frac_done = self.new()
        self.allow(frac_done, [SIZE_END], then)
        after_dot = self.new()
        self.allow(after_dot, range(DIGIT0 + (2 if even_tenth else 1), DIGIT0 + 10, 2 if even_tenth else 1),
                   frac_done)
        leading_zero = self.new()  # "0" must go on to "0.x": a size is > 0
        self.allow(leading_zero, [DOT], after_dot)
        int_states = [self.new() for _ in range(MAX_SIZE_DIGITS)]  # after 1, 2, 3 digits
        for n, state in enumerate(int_states):
            self.allow(state, [DOT], after_dot)
            self.allow(state, [SIZE_END], then)
            if n + 1 < MAX_SIZE_DIGITS:
                self.allow(state, range(DIGIT0, DIGIT0 + 10), int_states[n + 1])
        entry = self.new()
        self.allow(entry, [DIGIT0], leading_zero)
        self.allow(entry, range(DIGIT0 + 1, DIGIT0 + 10), int_states[0])
        return entry

    def field(self, type_name: str, name: str, then: int) -> int:
        if name in SIZE_FIELDS:
            return self.size(then, even_tenth=type_name == "circle")
        if name in ANGLE_FIELDS:
            return self.coordinate(then, max_whole=359)
        return self.coordinate(then, axis=0 if name.startswith("x") else 1)

    def polyline_points(self, start: int, min_points: int) -> int:
        """Reads at least `min_points` points; after that, another point, a new primitive or the end."""
        enough = self.new()  # min_points read: another point, or whatever `start` accepts
        self.merges.append((enough, start))
        self.merges.append((enough, self.coordinate(self.coordinate(enough, axis=1), axis=0)))
        state = enough
        for _ in range(min_points):
            state = self.coordinate(self.coordinate(state, axis=1), axis=0)
        return state

    def build(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        done = self.new()  # after <eos>: only padding
        self.allow(done, [PAD], done)
        start = self.new()  # between primitives
        self.allow(start, [EOS], done)
        for type_name in TYPE_NAMES:
            if type_name == "polyline":
                entry = self.new()
                self.allow(entry, [OPEN], self.polyline_points(start, 2))
                self.allow(entry, [CLOSED], self.polyline_points(start, 3))
            else:
                entry = start
                for field in reversed(field_names(type_name)):  # chained back to front
                    entry = self.field(type_name, field, entry)
            self.allow(start, [TYPE_ID[type_name]], entry)
        table, axes = np.stack(self.rows), np.asarray(self.axes, np.int32)
        changed = True
        while changed:  # a state also accepts what its merged successors accept
            changed = False
            for state, other in self.merges:
                fill = (table[state] < 0) & (table[other] >= 0)
                if fill.any():
                    table[state][fill] = table[other][fill]
                    changed = True
                if axes[state] < 0 <= axes[other]:  # its value tokens are the successor's
                    axes[state] = axes[other]
                    changed = True
        return table, axes, start, done


# GRAMMAR_AXES[state]: the sheet axis (0 = x, 1 = y) that the value tokens allowed in `state` measure,
# or -1; the decoder uses it to keep coordinates on the sheet.
GRAMMAR_TABLE, GRAMMAR_AXES, GRAMMAR_START, GRAMMAR_DONE = _Grammar().build()


def grammar_table() -> tuple[np.ndarray, int]:
    """(table [states, vocab] of next states, -1 where not allowed; the state right after `<bos>`)."""
    return GRAMMAR_TABLE, GRAMMAR_START


def grammar_accepts(tokens: Sequence[int]) -> bool:
    """Whether program tokens (after `<bos>`) follow the grammar up to and including `<eos>`."""
    state = GRAMMAR_START
    for token in tokens:
        state = int(GRAMMAR_TABLE[state, token])
        if state < 0:
            return False
    return state == GRAMMAR_DONE
