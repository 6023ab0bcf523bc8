"""Sizes: the numbers written on a drawing, the sheet they imply, and the candidate values that
`Recognizer.reread_sizes` scores for each size the model read.

The model reads digits at its input size; the ink measures sizes to about a pixel; the OCR engine
reads the numbers as written (`annotations`). Here the three meet, in sheet millimetres.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cad2program.contract import tokenizer
from cad2program.contract.geometry import tolerance
from cad2program.contract.program import Arc, Circle, Primitive, Rectangle, Sheet
from cad2program.reading.recognition import Recognition
from cad2program.reading.settings import DEFAULT_SETTINGS, ReadingSettings
from cad2program.refine import Frame, Ink, measure_primitives

SIZE_TOKENS = tokenizer.MAX_SIZE_DIGITS + 3  # the longest size: 3 digits, '.', a tenth, 'd;'

def written_in_mm(written, image: np.ndarray, sheet: Sheet) -> tuple[tuple[float, float, float, bool], ...]:
    """`annotations.written_numbers` (pixels) -> (value, x, y, is a radius) in the sheet's millimetres."""
    frame = Frame(sheet, image.shape[1], image.shape[0])
    return tuple((n.value, *frame.to_mm(n.col, n.row), n.radius) for n in written)


def _written_factor(primitive: Primitive) -> float:
    """A written size (and the model's digits) over the primitive's size field: a circle is dimensioned
    by its diameter."""
    return 2.0 if isinstance(primitive, Circle) else 1.0


def _as_written_size(primitive: Primitive, value: float, radius: bool) -> float | None:
    """The size a number written on the drawing gives a primitive, as the model writes it (a circle's
    diameter); None when it cannot be one: a radius (written after an R) sizes no rectangle."""
    if not radius:
        return value
    if isinstance(primitive, Rectangle):
        return None
    return round(_written_factor(primitive) * value, 1)




def sheet_from_numbers(image: np.ndarray, recognition: Recognition, written,
                       settings: ReadingSettings = DEFAULT_SETTINGS, ink: Ink | None = None) -> Sheet | None:
    """The drawing's real sheet, from the sizes written on it, when the sheet was only inferred.

    Each rectangle, circle and arc is measured on the ink in the inferred sheet's millimetres; a
    number written near it (`settings.scale_text_reach`) divided by that measure is a candidate scale. The
    scale that most sizes agree on (`settings.scale_agreement`), if at least two do, scales the
    inferred sheet; None otherwise. `written`: `ocr.written_numbers(image)`; `ink`: the
    image's `refine.Ink`, when the caller has it."""
    sheet = recognition.sheet
    if not written:
        return None
    placed = written_in_mm(written, image, sheet)
    sized = [p for p in recognition.primitives if type(p).SIZE_FIELDS]  # lines and polylines say nothing of scale
    _, sizes = measure_primitives(ink if ink is not None else image, sheet, sized)
    near = settings.scale_text_reach * tolerance(sheet)
    keys, ratios = [], []  # which size (primitive, field) each candidate scale comes from
    for k, (primitive, measured) in enumerate(zip(sized, sizes)):
        for field in type(primitive).SIZE_FIELDS:
            if measured.get(field, 0) > 0:
                factor = _written_factor(primitive)
                values = {_as_written_size(primitive, value, radius) for value, x, y, radius in placed
                          if distance_to_outline(primitive, x, y) <= near} - {None}
                keys += [(k, field)] * len(values)
                ratios += [value / (factor * measured[field]) for value in values]
    if not ratios:
        return None
    ratios = np.array(ratios)
    support = [len({key for key, other in zip(keys, ratios) if abs(other / r - 1) <= settings.scale_agreement}) for r in ratios]
    if max(support) < 2:  # one size alone could be any number near it
        return None
    best = ratios[int(np.argmax(support))]
    agreeing = ratios[np.abs(ratios / best - 1) <= settings.scale_agreement]
    scale = float(np.median(agreeing))
    found = Sheet(round(sheet.width * scale), round(sheet.height * scale))
    return found if not found.in_scope_problems() else None


def _digit_groups(tokens: np.ndarray, start: int, end: int) -> list[int]:
    """Where each size's digits begin in tokens[start:end] (a size's digits end with `d;`)."""
    groups, inside = [], False
    for i in range(start, end):
        digit = tokenizer.DIGIT0 <= int(tokens[i]) <= tokenizer.SIZE_END
        if digit and not inside:
            groups.append(i)
        inside = digit and int(tokens[i]) != tokenizer.SIZE_END
    return groups


def distance_to_outline(primitive: Primitive, x: float, y: float) -> float:
    """Millimetres from (x, y) to a rectangle's edges or to a circle's or an arc's circle."""
    if isinstance(primitive, Rectangle):
        x0, y0, x1, y1 = primitive.x, primitive.y, primitive.x + primitive.width, primitive.y + primitive.height
        outside = math.hypot(max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1))
        return outside if outside > 0 else min(x - x0, x1 - x, y - y0, y1 - y)
    return abs(math.hypot(x - primitive.x, y - primitive.y) - primitive.radius)


def bonus_of_written_values(primitive: Primitive, written, sheet: Sheet,
                            settings: ReadingSettings) -> dict[float, float]:
    """Per value written on the drawing, the log-likelihood it gains as this primitive's size: the
    nearer its text to the primitive, the more; for an arc, less without an R before it."""
    top, slope = settings.written_bonus, settings.distance_weight
    bonus: dict[float, float] = {}
    for value, x, y, radius in written:
        value = _as_written_size(primitive, value, radius)
        if value is None:
            continue
        gain = max(top - slope * distance_to_outline(primitive, x, y) / tolerance(sheet),
                   min(settings.written_floor, top))  # a bonus of 0 turns the OCR's numbers off
        if isinstance(primitive, Arc) and not radius:
            gain *= settings.plain_share_for_arcs
        bonus[value] = max(bonus.get(value, 0.0), gain)
    return bonus


def _read_digits(tokens: np.ndarray, start: int) -> float:
    """The value a size's digit tokens (from `start` to its `d;`) spell."""
    text = ""
    for token in map(int, tokens[start:]):
        if token == tokenizer.SIZE_END:
            break
        text += "." if token == tokenizer.DOT else str(token - tokenizer.DIGIT0)
    return float(text)


def size_jobs(recognition: Recognition, sizes: list[dict], settings: ReadingSettings = DEFAULT_SETTINGS
              ) -> list[list[tuple[str, int, list]]]:
    """Per primitive, the sizes to read again: (field, where its digits begin, [(value, digit tokens,
    log-likelihood of the ink's measurement if the size were that value, plus what the value gains
    from being written near the primitive, `bonus_of_written_values`)]).

    None at all when the readings and the ink disagree on the drawing's scale (the median ratio of
    read to measured sizes is off by more than `settings.scale_slack`): then the sheet size given is wrong, the
    ink's millimetres are not the drawing's, and the readings stay.
    """
    empty = [[] for _ in recognition.primitives]
    if recognition.tokens is None or len(recognition.spans) != len(recognition.primitives):
        return empty
    found = []  # (primitive index, field, where its digits begin, factor, read, ink, mm per pixel, ink's sigma)
    for k, (primitive, (a, b), measured) in enumerate(zip(recognition.primitives, recognition.spans, sizes)):
        for field, start in zip(type(primitive).SIZE_FIELDS, _digit_groups(recognition.tokens, a, b)):
            if field in measured:
                factor = _written_factor(primitive)
                found.append((k, field, start, factor, _read_digits(recognition.tokens, start),
                              factor * measured[field], measured["mm_per_px"], settings.ink_sigma_px_of(primitive)))
    if not found or abs(np.median([read / ink for *_, read, ink, _, _ in found]) - 1) > settings.scale_slack:
        return empty
    jobs, bonuses = empty, {}
    for k, field, start, factor, read, ink, mm_per_px, sigma_px in found:
        step = 0.2 if factor == 2.0 else 0.1  # a diameter is twice a radius on the 0.1 grid
        sigma = factor * sigma_px * mm_per_px
        values = np.arange(np.ceil((ink - 3 * sigma) / step), np.floor((ink + 3 * sigma) / step) + 1) * step
        values = sorted((round(float(v), 1) for v in values if v > 0), key=lambda v: abs(v - ink))[:settings.max_size_candidates]
        if k not in bonuses:  # a rectangle has two sizes, one set of numbers near it
            bonuses[k] = bonus_of_written_values(recognition.primitives[k], recognition.written or (),
                                                 recognition.sheet, settings)
        bonus = bonuses[k]
        candidates = []
        for v in values:
            try:
                candidates.append((round(v / factor, 1), tokenizer.encode_size(v),
                                   -0.5 * ((v - ink) / sigma) ** 2 + bonus.get(v, 0.0)))
            except tokenizer.TokenizerError:  # more digits than a size may have
                continue
        if candidates:
            jobs[k].append((field, start, candidates))
    return jobs


def with_read_sizes(measured: Primitive, read: Primitive, sheet: Sheet) -> Primitive:
    """A re-measured primitive with the sizes the model read."""
    for field in type(read).SIZE_FIELDS:
        if getattr(measured, field) != getattr(read, field):
            measured = with_size(measured, field, getattr(read, field), sheet)
    return measured


def with_size(primitive: Primitive, field: str, value: float, sheet: Sheet) -> Primitive:
    """The primitive with one size changed; a rectangle keeps its centre."""
    changes = {field: value}
    if isinstance(primitive, Rectangle):
        corner = "x" if field == "width" else "y"
        changes[corner] = round(getattr(primitive, corner) + (getattr(primitive, field) - value) / 2, 1)
    changed = dataclasses.replace(primitive, **changes)
    return changed if not changed.problems(sheet) else primitive
