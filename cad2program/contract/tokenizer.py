"""Tokens of the program language, and its grammar as a table for constrained decoding.

How numbers become tokens, and why (format 2):

- **Positions** (x, y, line end points, rectangle corners, polyline points) are *where the ink is*.
  Each is one *value token* `#0` .. `#500` on a grid of S/500, S being the sheet's longer side, in
  the image's orientation: x from the left edge, y from the *top* edge. The drawing is resized so
  that S spans the model's input, so a value token names a pixel column or row whatever the sheet's
  size: the decoder learns "where", never the arithmetic of millimetres per pixel (Pix2Seq does the
  same with box corners). The grid step is at most 1 mm, far inside the contract's matching
  tolerance of S/50.
- **Sizes** (width, height, radius) are written twice: first *measured*, as positions are (a
  rectangle's right and bottom edges, a circle's radius on the S/500 grid), then *read*, as the
  digits a drafter writes on the sheet: `d4 d7 d;` for 47, `d4 d7 d. d5 d;` for 47.5, ended by `d;`.
  One digit token per glyph lets the model learn ten glyph classes that every value shares.
  A circle is dimensioned by its diameter (`Ø20`), so its read digits are the diameter's.
  Decoding keeps the read value when it agrees with the measured one (within the matching
  tolerance) and falls back to the measurement when the reading is implausible: a misread digit
  then costs the size's exactness, not the whole primitive.
- **Angles** are one value token per whole degree (`#0` .. `#359`); the contract's tolerance is 5°.
- Field names and punctuation carry no information (every type has a fixed field order), so the
  token stream leaves them out; program text is formatted from the primitives.

A sequence is `<sheet> W H <bos> primitive ... <eos>`, where W, H are the sheet's sides in whole mm
as value tokens. Decoding needs the sheet (the grid step and the y flip depend on it).

`grammar_table()` compiles the language into a deterministic automaton, `table[state, token]` = next
state or -1. The decoder masks every token that would leave the grammar, and `value_limits` keeps
positions on the sheet, so every output parses into a valid program.
This module knows nothing about the model.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from cad2program.contract.program import (Arc, Circle, Line, Polyline, Primitive, ProgramError, Rectangle, Sheet,
                                          TYPE_NAMES, quantize)

TOKEN_FORMAT = 2  # written into model files: a model only makes sense with the tokens it learned
MAX_VALUE = 500  # value tokens #0..#500: the grid has 500 steps across the sheet's longer side
MAX_SIZE_DIGITS = 3  # integer digits of a size: at most 500 mm (the contract's largest side)
# The contract's matching tolerances in value tokens: S/50 on positions and lengths, 5 degrees on angles.
POSITION_TOLERANCE_TOKENS = MAX_VALUE // 50
ANGLE_TOLERANCE_TOKENS = 5


class TokenizerError(ValueError):
    """A token sequence (or a value) that the program language cannot express."""


def _build_vocab() -> list[str]:
    vocab = ["<pad>", "<bos>", "<eos>", "<sheet>"]
    vocab += list(TYPE_NAMES)
    vocab += ["<open>", "<closed>"]
    vocab += [f"#{v}" for v in range(MAX_VALUE + 1)]
    vocab += [f"d{d}" for d in range(10)] + ["d.", "d;"]
    return vocab


VOCAB: tuple[str, ...] = tuple(_build_vocab())
TOKEN_ID: dict[str, int] = {t: i for i, t in enumerate(VOCAB)}
PAD, BOS, EOS, SHEET = (TOKEN_ID[t] for t in ("<pad>", "<bos>", "<eos>", "<sheet>"))
OPEN, CLOSED = TOKEN_ID["<open>"], TOKEN_ID["<closed>"]
TYPE_ID = {name: TOKEN_ID[name] for name in TYPE_NAMES}
ID_TYPE = {i: name for name, i in TYPE_ID.items()}
VALUE0 = TOKEN_ID["#0"]  # value v is VALUE0 + v
DIGIT0 = TOKEN_ID["d0"]
DOT = TOKEN_ID["d."]
SIZE_END = TOKEN_ID["d;"]
VOCAB_SIZE = len(VOCAB)

# What each primitive's tokens hold, in order (after its type token; a polyline is special):
# "x"/"y" a position on that axis, "r" a measured radius, "a" an angle, "size" digits.
LAYOUT: dict[str, tuple[str, ...]] = {
    "line": ("x", "y", "x", "y"),  # x1 y1 x2 y2
    "rectangle": ("x", "y", "x", "y", "size", "size"),  # left top right bottom, width, height
    "circle": ("x", "y", "r", "size"),  # centre, radius measured, diameter read
    "arc": ("x", "y", "r", "size", "a", "a"),  # centre, radius measured, radius read, start, end
}


@dataclasses.dataclass(frozen=True)
class Grid:
    """The sheet's value grid: step S/500 mm, x from the left edge, y from the top edge."""

    sheet: Sheet

    @property
    def step(self) -> float:
        return max(self.sheet.width, self.sheet.height) / MAX_VALUE

    @property
    def tolerance(self) -> float:  # the contract's matching tolerance (section 5): S/50
        return max(self.sheet.width, self.sheet.height) * 0.02

    def limit(self, axis: int) -> int:
        side = self.sheet.width if axis == 0 else self.sheet.height
        return min(int(side / self.step + 1e-6), MAX_VALUE)

    def to_value(self, mm: float, axis: int) -> int:
        """A position in mm (contract orientation) -> its value on the grid, clipped to the sheet."""
        distance = mm if axis == 0 else self.sheet.height - mm
        return int(min(max(round(distance / self.step), 0), self.limit(axis)))

    def to_mm(self, value: int, axis: int) -> float:
        distance = value * self.step
        return round(distance if axis == 0 else self.sheet.height - distance, 1)


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------


def _tenths(value: float, where: str) -> int:
    tenths = int(round(quantize(value, where) * 10))
    if tenths <= 0:
        raise TokenizerError(f"{where}: a size must be > 0 ({value})")
    return tenths


def encode_size(value: float, where: str = "size") -> list[int]:
    tenths = _tenths(value, where)
    whole, tenth = divmod(tenths, 10)
    if len(str(whole)) > MAX_SIZE_DIGITS:
        raise TokenizerError(f"{where}: {value} has more than {MAX_SIZE_DIGITS} integer digits")
    tokens = [DIGIT0 + int(c) for c in str(whole)]
    if tenth:
        tokens += [DOT, DIGIT0 + tenth]
    return tokens + [SIZE_END]


def _angle(value: float) -> int:
    return VALUE0 + int(round(value)) % 360


def encode_primitive(primitive: Primitive, sheet: Sheet) -> list[int]:
    grid = Grid(sheet)
    x, y = (lambda mm: VALUE0 + grid.to_value(mm, 0)), (lambda mm: VALUE0 + grid.to_value(mm, 1))
    tokens = [TYPE_ID[primitive.TYPE]]
    p = primitive
    if isinstance(p, Polyline):
        tokens.append(CLOSED if p.closed else OPEN)
        for px, py in p.points:
            tokens += [x(px), y(py)]
    elif isinstance(p, Line):
        tokens += [x(p.x1), y(p.y1), x(p.x2), y(p.y2)]
    elif isinstance(p, Rectangle):
        tokens += [x(p.x), y(p.y + p.height), x(p.x + p.width), y(p.y)]
        tokens += encode_size(p.width, "rectangle.width") + encode_size(p.height, "rectangle.height")
    else:  # circle, arc
        radius = VALUE0 + int(min(round(p.radius / grid.step), MAX_VALUE))
        tokens += [x(p.x), y(p.y), radius]
        if isinstance(p, Circle):
            tokens += encode_size(round(2 * p.radius, 1), "circle.radius")
        else:
            tokens += encode_size(p.radius, "arc.radius") + [_angle(p.start_angle), _angle(p.end_angle)]
    return tokens


PROMPT_LENGTH = 4


def encode_prompt(sheet: Sheet) -> list[int]:
    """`<sheet> W H <bos>`: what the decoder is given before it writes the program.

    The sides are rounded to whole millimetres, which gives every prompt the same length, so a batch
    of drawings decodes in lockstep.
    """
    sides = [min(max(int(round(side)), 1), MAX_VALUE) for side in (sheet.width, sheet.height)]
    return [SHEET, VALUE0 + sides[0], VALUE0 + sides[1], BOS]


def value_limits(sheet: Sheet) -> tuple[int, int]:
    """The largest value token ids a position may take on this sheet, for x and for y."""
    grid = Grid(sheet)
    return VALUE0 + grid.limit(0), VALUE0 + grid.limit(1)


def encode_program(sheet: Sheet, primitives: Sequence[Primitive]) -> list[int]:
    """The program's tokens, ending with `<eos>` (without the prompt)."""
    tokens: list[int] = []
    for primitive in primitives:
        tokens += encode_primitive(primitive, sheet)
    return tokens + [EOS]


def encode(sheet: Sheet, primitives: Sequence[Primitive]) -> list[int]:
    return encode_prompt(sheet) + encode_program(sheet, primitives)


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

    def value(self) -> int:
        token = self.take()
        if not VALUE0 <= token <= VALUE0 + MAX_VALUE:
            self.pos -= 1
            raise self.fail("a value token", token)
        return token - VALUE0

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


def _choose_size(read: float, measured: float, room: float, grid: Grid) -> float:
    """The read size when it agrees with the ink (and fits on the sheet), else the measured one."""
    if abs(read - measured) <= grid.tolerance and read <= grid.sheet.width + grid.sheet.height:
        return round(read, 1)
    return round(min(max(measured, 0.1), max(room, 0.1)), 1)


def _nudged(value: int, limit: int) -> int:
    """The neighbouring grid value (towards the sheet's inside)."""
    return value + 1 if value < limit else value - 1


def _build(type_name: str, values: list, grid: Grid) -> Primitive:
    """One primitive from its decoded fields. Grid rounding may collapse what the contract forbids
    (a zero-length line, equal arc angles, an empty rectangle); those move by one grid step or one
    degree, far inside the matching tolerance, so that every grammatical output is a valid program."""
    sheet = grid.sheet
    if type_name == "line":
        x1, y1, x2, y2 = values
        if (x1, y1) == (x2, y2):
            x2 = _nudged(x2, grid.limit(0))
        return Line(grid.to_mm(x1, 0), grid.to_mm(y1, 1), grid.to_mm(x2, 0), grid.to_mm(y2, 1))
    if type_name == "rectangle":
        left, top, right, bottom, width, height = values
        left, right = min(left, right), max(left, right)
        top, bottom = min(top, bottom), max(top, bottom)
        x, y = grid.to_mm(left, 0), grid.to_mm(bottom, 1)
        width = _choose_size(width, (right - left) * grid.step, sheet.width - x, grid)
        height = _choose_size(height, (bottom - top) * grid.step, sheet.height - y, grid)
        if x + width > sheet.width:  # a one-step rectangle on the sheet's edge
            x = round(sheet.width - width, 1)
        if y + height > sheet.height:
            y = round(sheet.height - height, 1)
        return Rectangle(x, y, width, height)
    x, y, radius_measured, radius_read = values[:4]
    if type_name == "circle":
        radius_read = round(radius_read / 2, 1)  # the digits are the diameter's
    if radius_measured == MAX_VALUE:  # the grid saturates: only the reading can say how large
        radius = radius_read
    else:
        radius = _choose_size(radius_read, radius_measured * grid.step, float("inf"), grid)
    if type_name == "circle":
        return Circle(grid.to_mm(x, 0), grid.to_mm(y, 1), radius)
    start, end = values[4:]
    if start == end:
        end = (end + 1) % 360
    return Arc(grid.to_mm(x, 0), grid.to_mm(y, 1), radius, float(start), float(end))


def decode_spans(tokens: Sequence[int], sheet: Sheet) -> list[tuple[Primitive, int, int]]:
    """Program tokens (after `<bos>`) on `sheet` -> (primitive, first token, end token) triples.

    Stops at `<eos>` or `<pad>`; anything else out of the grammar raises TokenizerError.
    """
    grid = Grid(sheet)
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
                    points.append((grid.to_mm(reader.value(), 0), grid.to_mm(reader.value(), 1)))
                primitive = Polyline(points=points, closed=flag == CLOSED)
            else:
                values = [reader.size() if kind == "size" else reader.value() for kind in LAYOUT[type_name]]
                primitive = _build(type_name, values, grid)
        except ProgramError as err:
            raise TokenizerError(f"token {start}: {err}") from None
        out.append((primitive, start, reader.pos))


def decode(tokens: Sequence[int], sheet: Sheet) -> list[Primitive]:
    return [p for p, _, _ in decode_spans(tokens, sheet)]


def decode_prompt(tokens: Sequence[int]) -> Sheet:
    """The sheet a prompt gives, in whole millimetres."""
    reader = _Reader(tokens)
    if reader.take() != SHEET:
        raise reader.fail("'<sheet>'")
    sheet = Sheet(reader.value(), reader.value())
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

    A polyline's point list has no end marker: after enough points, the next state accepts another
    point *or* whatever the state between primitives accepts. Such "also accepts" links are recorded
    as merges and resolved at the end, so states can be wired in any order (the automaton has loops:
    every primitive returns to the state between primitives).
    """

    def __init__(self):
        self.rows: list[np.ndarray] = []
        self.merges: list[tuple[int, int]] = []
        self.axes: list[int] = []  # per state: the sheet axis its value tokens measure (0 x, 1 y, -1 none)
        self.windows: list[int] = []  # per state: its value tokens' matching tolerance, in tokens (0 none)

    def new(self) -> int:
        self.rows.append(np.full(VOCAB_SIZE, -1, np.int32))
        self.axes.append(-1)
        self.windows.append(0)
        return len(self.rows) - 1

    def allow(self, state: int, tokens, target: int):
        self.rows[state][np.asarray(list(tokens), dtype=np.int64)] = target

    def value(self, then: int, max_value: int = MAX_VALUE, axis: int = -1,
              window: int = POSITION_TOLERANCE_TOKENS) -> int:
        """A state that reads one value token (a position on sheet `axis`) and continues at `then`."""
        entry = self.new()
        self.allow(entry, range(VALUE0, VALUE0 + max_value + 1), then)
        self.axes[entry] = axis
        self.windows[entry] = window
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

    def field(self, type_name: str, kind: str, then: int) -> int:
        if kind == "size":
            return self.size(then, even_tenth=type_name == "circle")
        if kind == "a":
            return self.value(then, max_value=359, window=ANGLE_TOLERANCE_TOKENS)
        if kind == "r":
            return self.value(then)
        return self.value(then, axis=0 if kind == "x" else 1)

    def polyline_points(self, start: int, min_points: int) -> int:
        """Reads at least `min_points` points; after that, another point, a new primitive or the end."""
        enough = self.new()  # min_points read: another point, or whatever `start` accepts
        self.merges.append((enough, start))
        self.merges.append((enough, self.value(self.value(enough, axis=1), axis=0)))
        state = enough
        for _ in range(min_points):
            state = self.value(self.value(state, axis=1), axis=0)
        return state

    def build(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
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
                for kind in reversed(LAYOUT[type_name]):  # chained back to front
                    entry = self.field(type_name, kind, entry)
            self.allow(start, [TYPE_ID[type_name]], entry)
        table, axes, windows = np.stack(self.rows), np.asarray(self.axes, np.int32), np.asarray(self.windows, np.int32)
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
                if windows[state] < windows[other]:
                    windows[state] = windows[other]
                    changed = True
        return table, axes, windows, start, done


# GRAMMAR_AXES[state]: the sheet axis (0 = x, 1 = y) that the value tokens allowed in `state` measure,
# or -1; the decoder uses it to keep coordinates on the sheet. GRAMMAR_WINDOWS[state]: the matching
# tolerance of those value tokens, in tokens; confidences count a value's neighbours that close.
GRAMMAR_TABLE, GRAMMAR_AXES, GRAMMAR_WINDOWS, GRAMMAR_START, GRAMMAR_DONE = _Grammar().build()


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
