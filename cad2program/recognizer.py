"""From images to programs with a trained model: loading, batching, decoding, confidences.

`Recognizer` is what `predict`, `eval`, the server and the ClearML-Serving module use. A model is one
file (`*.msgpack`: the training config as JSON and the parameters), exported by `cad2program train`;
the default one ships inside the package.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx, serialization

from cad2program import tokenizer
from cad2program.annotations import TEXT_FINDERS, written_numbers
from cad2program.configs import TrainConfig, config_from_dict, config_to_dict
from cad2program.data import prepare_image
from cad2program.decode import (DecodeOptions, continuation_logprobs, default_grammar, embed_images, generate,
                                warm_up_continuations)
from cad2program.errors import UserError
from cad2program.model import DrawingReader
from cad2program.program import (Arc, Circle, Line, Polyline, Primitive, Rectangle, Sheet, format_program,
                                 program_problems, reading_order)
from cad2program.refine import (CIRCLE_INKED, Frame, drawn_alone, erase_primitives, inked_rounds, longest_side,
                               measure_primitives, remeasure_arcs)
from cad2program.scoring import pair_error, tolerance

DEFAULT_MODEL = Path(__file__).parent / "assets" / "default_model.msgpack"
# Without a sheet size, the longer side of the image is taken as this many mm (an A4 sheet's long side).
DEFAULT_LONGER_SIDE_MM = 297
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)  # batches are padded up to one of these: few compilations


@dataclasses.dataclass
class Recognition:
    """One drawing's result."""

    sheet: Sheet
    primitives: list[Primitive]
    confidences: list[float]  # per primitive: the chance it matches, as the model sees it (primitive_confidence)
    valid: bool  # the output parsed into a program valid on this sheet
    problems: list[str] = dataclasses.field(default_factory=list)
    # What the model wrote: its token row (after the prompt) and each primitive's [start, end) in it.
    tokens: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)
    spans: list[tuple[int, int]] = dataclasses.field(default_factory=list, repr=False, compare=False)
    # The image through the model's encoder (N, D): re-reading sizes needs it, and it costs a pass.
    memory: Any = dataclasses.field(default=None, repr=False, compare=False)
    # The numbers an OCR engine read on the full-resolution image (`annotations.written_numbers`), each
    # as (value, x, y, is a radius): where its text is, in sheet millimetres.
    written: tuple[tuple[float, float, float, bool], ...] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def program(self) -> str:
        return format_program(self.primitives)

    def to_json(self) -> dict:
        return {"sheet": self.sheet.to_json(), "program": self.program,
                "primitives": [{**p.to_json(), "confidence": round(c, 4)}
                               for p, c in zip(self.primitives, self.confidences)]}


def infer_sheet(image: np.ndarray, longer_side_mm: float = DEFAULT_LONGER_SIDE_MM) -> Sheet:
    """A sheet with the image's aspect ratio (kept within the contract's 2:1) and a given longer side."""
    h, w = image.shape[:2]
    ratio = min(max(w / h, 0.5), 2.0)
    if ratio >= 1:
        return Sheet(longer_side_mm, round(longer_side_mm / ratio))
    return Sheet(round(longer_side_mm * ratio), longer_side_mm)


def primitive_confidence(tokens: np.ndarray, logprobs: np.ndarray) -> float:
    """The chance that a primitive matches, as the model sees it: the product of its type's and its
    values' probabilities, each value's counting its neighbours within the matching tolerance
    (`tokenizer.GRAMMAR_WINDOWS`). The read digits of sizes are left out: a misread digit costs
    the size's exactness, not the match."""
    counted = (tokens < tokenizer.DIGIT0) | (tokens > tokenizer.SIZE_END)
    return float(math.exp(logprobs[counted].sum()))


def fit_confidence_power(confidences: Sequence[float], matched: Sequence[bool]) -> float:
    """The power p that makes confidence ** p best predict whether primitives matched (maximum likelihood).

    The product in `primitive_confidence` treats a primitive's tokens as independent, which they are
    not (a circle's centre and radius are read from the same ink), so it comes out too low; one power
    fitted on held-out drawings corrects that, as temperature scaling does for classifiers. Unlike a
    temperature, it needs no logits again, and it keeps the order of confidences.
    """
    c = np.clip(np.asarray(confidences, np.float64), 1e-9, 1.0)
    m = np.asarray(matched, bool)
    if len(c) == 0 or m.all() or not m.any():
        return 1.0  # nothing to fit on
    powers = np.exp(np.linspace(np.log(0.05), np.log(4.0), 400))
    with np.errstate(divide="ignore"):
        scaled = np.clip(c[None, :] ** powers[:, None], 1e-9, 1 - 1e-9)  # (powers, primitives)
        likelihood = np.where(m[None, :], np.log(scaled), np.log1p(-scaled)).sum(axis=1)
    return float(round(powers[int(np.argmax(likelihood))], 4))


# Straight-edged primitives whose strokes lie on ink less than this after re-measuring are dropped
# (`refine.ink_share`). First read off the own test sets; re-checked on the foreign battery's dev halves
# (scripts/derive_thresholds.py, then scripts/eval_battery.py with other values): higher values drop
# more unmatched primitives at the first measuring, but lower F1 on the dev halves (docs/battery.md).
MIN_INK_SHARE = {Line: 0.5, Rectangle: 0.7, Polyline: 0.85}


# A closed polyline whose every side is shorter than this many matching tolerances is an arrowhead
# the model took for an outline. Re-checked on the battery's dev halves as MIN_INK_SHARE was: no matched
# closed polyline was under 4 tolerances there, but a larger value did not raise F1 (docs/battery.md).
ARROWHEAD_SIDES = 2.0


def _arrowhead_sized(primitive: Primitive, sheet: Sheet) -> bool:
    """Whether a primitive is a closed polyline whose every side is under ARROWHEAD_SIDES tolerances."""
    return (isinstance(primitive, Polyline) and primitive.closed
            and longest_side(primitive) < ARROWHEAD_SIDES * tolerance(sheet))


def _kept(recognition: Recognition, keep: Sequence[int], primitives: Sequence[Primitive] | None = None,
          **changes) -> Recognition:
    """The recognition with only the primitives at indices `keep` (of `primitives`, when given: the
    recognition's own re-measured), their confidences and spans with them."""
    primitives = recognition.primitives if primitives is None else primitives
    spans = recognition.spans if len(recognition.spans) == len(primitives) else []
    return dataclasses.replace(recognition, primitives=[primitives[k] for k in keep],
                               confidences=[recognition.confidences[k] for k in keep],
                               spans=[spans[k] for k in keep] if spans else [], **changes)


def measured_on(image: np.ndarray, recognition: Recognition, sizes_from_ink: bool = True,
                read_text: bool = True, written: tuple | None = None,
                text_finder: str = "ink") -> tuple[Recognition, list[dict]]:
    """The recognition with its primitives re-measured on the image's ink, those without ink where
    they should be drawn (MIN_INK_SHARE) and arrowhead-sized outlines (ARROWHEAD_SIDES) left out, and
    the sizes the ink shows for each one kept (`refine.measure_primitives`). `sizes_from_ink=False`
    keeps the sizes the model read (an inferred sheet: the ink's millimetres are not the drawing's).
    `read_text`: the numbers written on the image are read too (`annotations.written_numbers` with
    `text_finder`, unless `written` holds them already), for `reread_sizes`. Needs no model: a server
    runs it beside the model thread."""
    primitives, sizes = measure_primitives(image, recognition.sheet, recognition.primitives)
    if not sizes_from_ink:
        primitives = [_with_read_sizes(new, old, recognition.sheet) for new, old in zip(primitives, recognition.primitives)]
    keep = [k for k, (p, size) in enumerate(zip(primitives, sizes))
            if size.get("ink_share", 1.0) >= MIN_INK_SHARE.get(type(p), 0.0) and not _arrowhead_sized(p, recognition.sheet)]
    if not (read_text and sizes_from_ink):
        written = None
    elif written is None:
        written = written_numbers(image, text_finder)
    if written is not None:
        written = _written_in_mm(written, image, recognition.sheet)
    kept = _kept(recognition, keep, primitives, written=written)
    return kept, [sizes[k] for k in keep] if sizes_from_ink else [{} for _ in keep]


def _written_in_mm(written, image: np.ndarray, sheet: Sheet) -> tuple[tuple[float, float, float, bool], ...]:
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


# Sizes that agree on the drawing's scale within this share are one scale (`sheet_from_numbers`), and
# a number's text counts for primitives within this many matching tolerances (dimension text stands
# off its primitive by the dimension line's offset, often 3-5 tolerances).
SCALE_AGREEMENT = 0.03
SCALE_TEXT_REACH = 8


def sheet_from_numbers(image: np.ndarray, recognition: Recognition, written) -> Sheet | None:
    """The drawing's real sheet, from the sizes written on it, when the sheet was only inferred.

    Each rectangle, circle and arc is measured on the ink in the inferred sheet's millimetres; a
    number written near it (SCALE_TEXT_REACH) divided by that measure is a candidate scale. The
    scale that most sizes agree on (SCALE_AGREEMENT), if at least two do, scales the inferred sheet;
    None otherwise. `written`: `annotations.written_numbers(image)`."""
    sheet = recognition.sheet
    if not written:
        return None
    placed = _written_in_mm(written, image, sheet)
    sized = [p for p in recognition.primitives if type(p).SIZE_FIELDS]  # lines and polylines say nothing of scale
    _, sizes = measure_primitives(image, sheet, sized)
    near = SCALE_TEXT_REACH * tolerance(sheet)
    keys, ratios = [], []  # which size (primitive, field) each candidate scale comes from
    for k, (primitive, measured) in enumerate(zip(sized, sizes)):
        for field in type(primitive).SIZE_FIELDS:
            if measured.get(field, 0) > 0:
                factor = _written_factor(primitive)
                values = {_as_written_size(primitive, value, radius) for value, x, y, radius in placed
                          if _distance_to_outline(primitive, x, y) <= near} - {None}
                keys += [(k, field)] * len(values)
                ratios += [value / (factor * measured[field]) for value in values]
    if not ratios:
        return None
    ratios = np.array(ratios)
    support = [len({key for key, other in zip(keys, ratios) if abs(other / r - 1) <= SCALE_AGREEMENT}) for r in ratios]
    if max(support) < 2:  # one size alone could be any number near it
        return None
    best = ratios[int(np.argmax(support))]
    agreeing = ratios[np.abs(ratios / best - 1) <= SCALE_AGREEMENT]
    scale = float(np.median(agreeing))
    found = Sheet(round(sheet.width * scale), round(sheet.height * scale))
    return found if not found.in_scope_problems() else None


# A second look's candidate is kept when the first reading gives its tokens at least this summed
# log-probability in its place (`Recognizer.with_second_look`). Chosen on 150 held-out generated
# drawings (`scripts/second_look.py`), never on the test sets.
SECOND_LOOK_MIN_LOGPROB = -17.5
CANDIDATE_TOKENS = 64  # one width for every candidate's tokens: one compiled shape per sequence length
SEGMENT_TOKENS = 8  # a two-point polyline (7 tokens with the one after it) fits: a narrow width costs little


# A second look's polyline drawn as a stroke of its own (`refine.drawn_alone`) gains this much
# log-probability: the many tokens of a polyline score low even where one is plainly drawn, while the
# parts of dimensions that the second reading takes for polylines are joined to other ink. Chosen on
# 150 held-out generated drawings (`scripts/second_look.py --alone-bonus`), never on the test sets.
DRAWN_ALONE_BONUS = 22.5


def with_ink_evidence(image: np.ndarray, sheet: Sheet, candidates: Sequence[tuple[Primitive, float, float]],
                      bonus: float = DRAWN_ALONE_BONUS) -> list[tuple[Primitive, float, float]]:
    """The second look's (primitive, confidence, log-probability) candidates, those drawn alone on the
    image (`refine.drawn_alone`) with `bonus` added to their log-probability."""
    return with_alone_bonus(candidates, drawn_alone(image, sheet, [p for p, _, _ in candidates]), bonus)


def with_alone_bonus(candidates: Sequence[tuple[Primitive, float, float]], alone: Sequence[bool],
                     bonus: float) -> list[tuple[Primitive, float, float]]:
    """The candidates with `bonus` added to the log-probability of those `alone` marks."""
    return [(p, c, score + bonus * a) for (p, c, score), a in zip(candidates, alone)]


def unexplained(first: Recognition, second: Recognition) -> list[tuple[Primitive, float]]:
    """The second reading's (primitive, confidence) pairs that repeat none of the first's primitives."""
    return [(p, c) for p, c in zip(second.primitives, second.confidences)
            if not any(type(p) is type(q) and pair_error(p, q, first.sheet) is not None for q in first.primitives)]


def with_candidates(recognition: Recognition, candidates: Sequence[tuple[Primitive, float, float]],
                    min_logprob: float) -> Recognition:
    """The recognition plus the second look's candidates (primitive, confidence, log-probability)
    that score at least `min_logprob`, less repeats."""
    added = [(p, c) for p, c, score in candidates if score >= min_logprob]
    if not added:
        return recognition
    return without_repeats(dataclasses.replace(
        recognition, primitives=recognition.primitives + [p for p, _ in added],
        confidences=recognition.confidences + [c for _, c in added], spans=[]))


def without_uninked_circles(image: np.ndarray, recognition: Recognition) -> Recognition:
    """The recognition less the circles whose round is inked under `refine.CIRCLE_INKED` (`refine.inked_rounds`).

    On held-out generated drawings, matched circles were inked nearly all round and nearly every
    unmatched one under 70% (a throwaway probe); held-out F1 rose with the rule. Done last, after the second look: a first reading's circle placed off
    its ink still marks where the second look's candidate for that circle belongs in reading order
    (`Recognizer._slot_logprobs`)."""
    shares = inked_rounds(image, recognition.sheet, recognition.primitives)
    keep = [k for k, share in enumerate(shares) if share is None or share >= CIRCLE_INKED]
    return recognition if len(keep) == len(shares) else _kept(recognition, keep)


def with_arcs_remeasured(image: np.ndarray, measured: Recognition, reread: Recognition) -> Recognition:
    """`reread` (`measured` with sizes read again) with each arc whose radius changed measured again
    on the image with its new radius (`refine.remeasure_arcs`)."""
    return dataclasses.replace(reread, primitives=remeasure_arcs(image, reread.sheet, measured.primitives,
                                                                 reread.primitives))


def _segment_of(primitive: Primitive) -> Line | None:
    """A two-point open polyline as the line it is drawn as; None for anything else."""
    if isinstance(primitive, Polyline) and len(primitive.points) == 2 and not primitive.closed:
        (x1, y1), (x2, y2) = primitive.points
        return Line(x1, y1, x2, y2)
    return None


def _segment_variants(segment: Line) -> tuple[Line, Line, Polyline, Polyline]:
    """One segment as a line and as a two-point open polyline, each in both point orders."""
    ends = ((segment.x1, segment.y1), (segment.x2, segment.y2))
    return (segment, Line(*ends[1], *ends[0]), Polyline(ends, False), Polyline(ends[::-1], False))


def without_repeats(recognition: Recognition) -> Recognition:
    """The recognition less any primitive written twice: two of one type that would match each other
    under the contract's tolerance (re-measuring often puts both on the same ink), the more confident
    staying; and a two-point polyline on a line's segment, which is drawn as the line is: the line
    stays, the usual way to write one segment."""
    primitives, confidences = recognition.primitives, recognition.confidences
    lines = [p for p in primitives if isinstance(p, Line)]
    kept: list[int] = []
    for i in sorted(range(len(primitives)), key=lambda i: -confidences[i]):
        segment = _segment_of(primitives[i])
        if segment is not None and any(pair_error(segment, line, recognition.sheet) is not None for line in lines):
            continue
        if not any(type(primitives[i]) is type(primitives[k])
                   and pair_error(primitives[i], primitives[k], recognition.sheet) is not None for k in kept):
            kept.append(i)
    return _kept(recognition, sorted(kept))


def _digit_groups(tokens: np.ndarray, start: int, end: int) -> list[int]:
    """Where each size's digits begin in tokens[start:end] (a size's digits end with `d;`)."""
    groups, inside = [], False
    for i in range(start, end):
        digit = tokenizer.DIGIT0 <= int(tokens[i]) <= tokenizer.SIZE_END
        if digit and not inside:
            groups.append(i)
        inside = digit and int(tokens[i]) != tokenizer.SIZE_END
    return groups


MAX_SIZE_CANDIDATES = 41
SIZE_TOKENS = tokenizer.MAX_SIZE_DIGITS + 3  # the longest size: 3 digits, '.', a tenth, 'd;'
# How far an ink measurement strays from the true size, in pixels, per type. `scripts/ink_spread.py`
# (200 held-out drawings at 512 px, guesses displaced as the model's are): rectangles' sides std 0.61,
# circles' radii 0.18 (bias +0.11), arcs' radii 0.53 robust with heavy tails (a short arc's circle is
# loose). The model's guesses are worse than that script's, so each is taken a little wider. Arcs'
# at 2.0: with the OCR's numbers, a wider window lets a written radius win where a short arc's ink
# strays (`scripts/reading_weight.py /tmp/heldout 0.3` with the ink finder and run 8's model: size
# exactness 0.958, 0.960, 0.967, 0.968, 0.968, 0.968 at 1.2, 1.5, 1.8, 2.0, 2.5, 3.0; F1 0.909,
# 0.908 from 2.5).
INK_SIGMA_PX = {Rectangle: 0.8, Circle: 0.3, Arc: 2.0}
# The model is over-confident in the digits it reads at 256 px: weighed against the ink at 0.3
# (`scripts/reading_weight.py` on 150 held-out generated drawings: 1.0 -> size exactness 0.779,
# 0.6 -> 0.806, 0.35 -> 0.816, 0.2 -> 0.820, 0.1 -> 0.804, 0 -> 0.430).
READING_WEIGHT = 0.3
SCALE_SLACK = 0.25  # single readings stray by 10-20% at 256 px; a wrong sheet moves them all

# A value the OCR found written on the drawing gains this much log-likelihood as a size, less
# DISTANCE_WEIGHT per matching tolerance between its text and the primitive (another primitive's
# dimension may hold a value near this one's), but at least WRITTEN_FLOOR. `scripts/reading_weight.py`
# on 150 held-out drawings with run 5's model: size exactness 0.77 without the OCR; --bonus 2, 4, 8, 16
# (anywhere on the sheet) -> 0.905, 0.909, 0.918, 0.918 (commit 85392a3: level text only); then with
# turned text read too, --distance 0, 0.25, 0.5, 1, 2 -> 0.934, 0.952, 0.947, 0.912, 0.878. Run 6's
# model: 0.939, 0.946, 0.946, 0.911, 0.875.
WRITTEN_BONUS = 8.0
DISTANCE_WEIGHT = 0.25
WRITTEN_FLOOR = 1.0
# An arc's radius is written after an R (the contract), so a number without one near an arc is more
# likely another primitive's: it gains this share of the bonus. Same script, the ink finder, run 8's
# model: size exactness 0.954 at 1, 0.958 at 0.5, 0.956 at 0.25 and at 0.
PLAIN_SHARE_FOR_ARCS = 0.5


def _distance_to_outline(primitive: Primitive, x: float, y: float) -> float:
    """Millimetres from (x, y) to a rectangle's edges or to a circle's or an arc's circle."""
    if isinstance(primitive, Rectangle):
        x0, y0, x1, y1 = primitive.x, primitive.y, primitive.x + primitive.width, primitive.y + primitive.height
        outside = math.hypot(max(x0 - x, 0, x - x1), max(y0 - y, 0, y - y1))
        return outside if outside > 0 else min(x - x0, x1 - x, y - y0, y1 - y)
    return abs(math.hypot(x - primitive.x, y - primitive.y) - primitive.radius)


def _written_bonus(primitive: Primitive, written, sheet: Sheet) -> dict[float, float]:
    """Per value written on the drawing, the log-likelihood it gains as this primitive's size: the
    nearer its text to the primitive, the more; for an arc, less without an R before it."""
    bonus: dict[float, float] = {}
    for value, x, y, radius in written:
        value = _as_written_size(primitive, value, radius)
        if value is None:
            continue
        gain = max(WRITTEN_BONUS - DISTANCE_WEIGHT * _distance_to_outline(primitive, x, y) / tolerance(sheet),
                   min(WRITTEN_FLOOR, WRITTEN_BONUS))  # a bonus of 0 turns the OCR's numbers off
        if isinstance(primitive, Arc) and not radius:
            gain *= PLAIN_SHARE_FOR_ARCS
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


def _size_jobs(recognition: Recognition, sizes: list[dict]) -> list[list[tuple[str, int, list]]]:
    """Per primitive, the sizes to read again: (field, where its digits begin, [(value, digit tokens,
    log-likelihood of the ink's measurement if the size were that value, plus what the value gains
    from being written near the primitive, `_written_bonus`)]).

    None at all when the readings and the ink disagree on the drawing's scale (the median ratio of
    read to measured sizes is off by more than SCALE_SLACK): then the sheet size given is wrong, the
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
                              factor * measured[field], measured["mm_per_px"], INK_SIGMA_PX[type(primitive)]))
    if not found or abs(np.median([read / ink for *_, read, ink, _, _ in found]) - 1) > SCALE_SLACK:
        return empty
    jobs, bonuses = empty, {}
    for k, field, start, factor, read, ink, mm_per_px, sigma_px in found:
        step = 0.2 if factor == 2.0 else 0.1  # a diameter is twice a radius on the 0.1 grid
        sigma = factor * sigma_px * mm_per_px
        values = np.arange(np.ceil((ink - 3 * sigma) / step), np.floor((ink + 3 * sigma) / step) + 1) * step
        values = sorted((round(float(v), 1) for v in values if v > 0), key=lambda v: abs(v - ink))[:MAX_SIZE_CANDIDATES]
        if k not in bonuses:  # a rectangle has two sizes, one set of numbers near it
            bonuses[k] = _written_bonus(recognition.primitives[k], recognition.written or (), recognition.sheet)
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


def _with_read_sizes(measured: Primitive, read: Primitive, sheet: Sheet) -> Primitive:
    """A re-measured primitive with the sizes the model read."""
    for field in type(read).SIZE_FIELDS:
        if getattr(measured, field) != getattr(read, field):
            measured = _with_size(measured, field, getattr(read, field), sheet)
    return measured


def _with_size(primitive: Primitive, field: str, value: float, sheet: Sheet) -> Primitive:
    """The primitive with one size changed; a rectangle keeps its centre."""
    changes = {field: value}
    if isinstance(primitive, Rectangle):
        corner = "x" if field == "width" else "y"
        changes[corner] = round(getattr(primitive, corner) + (getattr(primitive, field) - value) / 2, 1)
    changed = dataclasses.replace(primitive, **changes)
    return changed if not changed.problems(sheet) else primitive


def programs_from_tokens(tokens: np.ndarray, logprobs: np.ndarray, sheets: Sequence[Sheet],
                         confidence_power: float = 1.0) -> list[Recognition]:
    """Decoded token rows -> recognitions. A row cut off by the length limit keeps its complete primitives.

    Confidences are `primitive_confidence` raised to `confidence_power` (see `fit_confidence_power`).
    """
    out = []
    for row, row_logprobs, sheet in zip(tokens, logprobs, sheets):
        ended = tokenizer.EOS in row
        end = int(np.argmax(row == tokenizer.EOS)) if ended else len(row)
        try:
            spans = tokenizer.decode_spans(row[:end], sheet)
            problems = [] if ended else ["the output reached the length limit"]
        except tokenizer.TokenizerError as err:  # only when decoding was not constrained
            spans, problems = [], [str(err)]
            if not ended:  # keep the complete primitives before the cut
                for cut in range(end, 0, -1):
                    try:
                        spans = tokenizer.decode_spans(row[:cut], sheet)
                        break
                    except tokenizer.TokenizerError:
                        continue
        if not ended and spans and spans[-1][0].problems():
            spans = spans[:-1]  # cut off inside its last primitive (a polyline before its second point)
        primitives = [p for p, _, _ in spans]
        confidences = [primitive_confidence(row[a:b], row_logprobs[a:b]) ** confidence_power for _, a, b in spans]
        problems += program_problems(primitives, sheet)
        out.append(Recognition(sheet, primitives, confidences, valid=not problems, problems=problems,
                               tokens=np.array(row[:end]), spans=[(a, b) for _, a, b in spans]))
    return out


def export_model(path: Path, config: TrainConfig, params, extra: dict | None = None) -> Path:
    """Writes a self-contained model file: the config (JSON) and the parameters (msgpack)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pure = jax.tree_util.tree_map(np.asarray, nnx.to_pure_dict(params))
    payload = {"format": "cad2program-model-1", "token_format": tokenizer.TOKEN_FORMAT,
               "config": json.dumps(config_to_dict(config)),
               "extra": json.dumps(extra or {}), "params": pure}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(serialization.msgpack_serialize(payload))
    tmp.replace(path)
    return path


def build_model(config: TrainConfig, seed: int = 0) -> DrawingReader:
    """A freshly initialised model; initialised in one compiled call rather than op by op (much faster)."""
    return _init_model(config.model, seed)


@functools.partial(nnx.jit, static_argnums=(0, 1))
def _init_model(model_config, seed: int) -> DrawingReader:
    return DrawingReader(model_config, nnx.Rngs(seed))


def load_model(path: Path) -> tuple[TrainConfig, DrawingReader, dict]:
    """Reads an exported model file (or a training workdir, taking its best or latest export)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best_model.msgpack", "model.msgpack"):
            if (path / name).exists():
                path = path / name
                break
        else:
            raise UserError(f"{path}: no best_model.msgpack or model.msgpack in this folder "
                            f"(is it a training workdir after its first evaluation?)")
    if not path.exists():
        raise UserError(f"{path}: model file not found")
    try:
        payload = serialization.msgpack_restore(path.read_bytes())
        if payload.get("format") != "cad2program-model-1":
            raise ValueError("not a cad2program model file")
        config = config_from_dict(json.loads(payload["config"]))
    except Exception as err:  # msgpack raises a variety of errors on a foreign file
        raise UserError(f"{path}: cannot read this model file ({err})") from None
    token_format = payload.get("token_format", 1)  # files written before format 2 do not say
    if token_format != tokenizer.TOKEN_FORMAT:
        raise UserError(f"{path}: this model writes token format {token_format}, and this version of "
                        f"cad2program reads format {tokenizer.TOKEN_FORMAT}; retrain it (or fine-tune the "
                        f"default model) with this version")
    abstract = nnx.eval_shape(lambda: build_model(config))
    graphdef, state = nnx.split(abstract)
    nnx.replace_by_pure_dict(state, payload["params"])
    return config, nnx.merge(graphdef, state), json.loads(payload.get("extra", "{}"))


class Recognizer:
    """A loaded model plus decoding options; `recognize` takes any number of images."""

    def __init__(self, config: TrainConfig, model: DrawingReader | tuple, options: DecodeOptions | None = None,
                 max_batch: int = 32, info: dict | None = None, refine: bool = True, read_text: bool = True,
                 second_look: bool = True, text_finder: str = "ink", engine=None):
        """`model`: a DrawingReader, or its `nnx.split` pair (as training holds it).

        `engine`: None decodes with JAX (`decode.generate`); else an object whose
        `generate(memory, sheets, options, limits)` returns what `decode.generate` does, as
        `vllm_engine.VllmDecoder` (the encoder and every re-reading still run on `model`).

        `refine`: `recognize` re-measures the primitives on the full-resolution image (`refine.py`);
        `read_text`: and weighs the numbers an OCR engine reads on it when reading sizes again
        (`annotations.py`), its text found by `text_finder` (one of `annotations.TEXT_FINDERS`);
        `second_look`: and reads what the found primitives leave unexplained again (`with_second_look`).
        """
        if text_finder not in TEXT_FINDERS:
            raise UserError(f"unknown text finder {text_finder!r}: one of {', '.join(TEXT_FINDERS)}")
        self.config, self.options, self.max_batch = config, options or DecodeOptions(), max_batch
        self.refine, self.read_text, self.second_look = refine, read_text, second_look
        self.text_finder = text_finder
        self.options = dataclasses.replace(self.options, max_new_tokens=min(
            self.options.max_new_tokens, config.model.max_len - tokenizer.PROMPT_LENGTH))
        self.split = model if isinstance(model, tuple) else nnx.split(model)
        self.grammar = default_grammar()
        self.info = info or {}
        self.engine = engine

    def close(self) -> None:
        """Ends the decoding engine's worker, when it has one (vLLM)."""
        if self.engine is not None:
            self.engine.close()

    @classmethod
    def load(cls, path: Path | str | None = None, options: DecodeOptions | None = None, **kw) -> "Recognizer":
        if path is None:
            if not DEFAULT_MODEL.exists():
                raise UserError(f"the default model is missing from the package ({DEFAULT_MODEL}); "
                                f"reinstall, or pass --model")
            path = DEFAULT_MODEL
        config, model, extra = load_model(Path(path))
        return cls(config, model, options, info=extra, **kw)

    @property
    def image_size(self) -> int:
        return self.config.model.image_size

    def written_on(self, image: np.ndarray):
        """The numbers written on an image as this recognizer reads them (`annotations.written_numbers`
        with its text finder); None when it reads no text, or no OCR engine is installed."""
        return written_numbers(image, self.text_finder) if self.read_text else None

    def recognize(self, images: Sequence[np.ndarray], sheets: Sequence[Sheet | None] | None = None,
                  rng=None, written: Sequence | None = None, finish: bool = True) -> list[Recognition]:
        """`written`: the numbers already read on each image (`annotations.written_numbers`), when the
        caller has them; read here otherwise. `finish=False` skips the last step (circles not inked
        left out, `without_uninked_circles`): the reading the second look works from."""
        sheets = list(sheets) if sheets is not None else [None] * len(images)
        known = [s is not None for s in sheets]
        sheets = [s if s is not None else infer_sheet(img) for img, s in zip(images, sheets)]
        out: list[Recognition] = []
        for start in range(0, len(images), self.max_batch):
            originals = images[start:start + self.max_batch]
            prepared = np.stack([prepare_image(img, self.image_size) for img in originals])
            found = self.recognize_prepared(prepared, sheets[start:start + len(originals)], rng)
            if not self.refine:
                out += found
                continue
            batch_known = known[start:start + len(originals)]
            batch_written = (written[start:start + len(originals)] if written is not None else
                             [self.written_on(img) for img in originals])
            if self.read_text and not all(batch_known):
                found, batch_known = self.with_sheets_from_numbers(prepared, originals, found, batch_known, batch_written, rng)
            found = self.refined(prepared, originals, found, batch_known, batch_written)
            if self.second_look:
                found = self.with_second_look(originals, found, batch_known, batch_written, rng)
            out += [without_uninked_circles(image, r) for image, r in zip(originals, found)] if finish else found
        return out

    def with_sheets_from_numbers(self, prepared: np.ndarray, images: Sequence[np.ndarray],
                                 recognitions: list[Recognition], sheet_known: Sequence[bool], written: Sequence,
                                 rng=None) -> tuple[list[Recognition], list[bool]]:
        """Where the sheet was inferred, the real one found from the numbers written on the drawing
        (`written`: `annotations.written_numbers` of each image; `sheet_from_numbers`) and the drawing
        read again on it, as if the user had given it. -> (recognitions, whether each sheet is now known)."""
        recognitions, known = list(recognitions), list(sheet_known)
        redo = []
        for i, (image, r) in enumerate(zip(images, recognitions)):
            if not known[i]:
                sheet = sheet_from_numbers(image, r, written[i])
                if sheet is not None:
                    redo.append((i, sheet))
        if redo:
            again = self.recognize_prepared(prepared[[i for i, _ in redo]], [s for _, s in redo], rng)
            for (i, _), r in zip(redo, again):
                recognitions[i], known[i] = r, True
        return recognitions, known

    def with_second_look(self, images: Sequence[np.ndarray], recognitions: list[Recognition],
                         sheet_known: Sequence[bool], written: Sequence, rng=None) -> list[Recognition]:
        """Each drawing read again with the ink of what was found erased, and what that second reading
        finds added where the model, looking at the whole drawing, finds it likely enough.

        The model sometimes leaves out a primitive it plainly sees (a line among many, in a busy
        drawing). On the residual image (`refine.erase_primitives`) that primitive stands alone and is
        read, but so are false ones: the annotations of erased primitives, orphaned, look like parts
        of something. Each candidate is therefore scored by the first reading: the log-probability
        of its tokens where the program's reading order puts it (`_slot_logprobs`). A missed primitive
        scores far above an orphaned annotation's (SECOND_LOOK_MIN_LOGPROB).
        """
        found = self.second_look_candidates(images, recognitions, sheet_known, written, rng)
        return [with_candidates(r, candidates, SECOND_LOOK_MIN_LOGPROB) for r, candidates in zip(recognitions, found)]

    def second_look_candidates(self, images: Sequence[np.ndarray], recognitions: list[Recognition],
                               sheet_known: Sequence[bool], written: Sequence, rng=None,
                               alone_bonus: float = DRAWN_ALONE_BONUS) -> list[list[tuple[Primitive, float, float]]]:
        """What the second reading finds that the first lacks, per drawing: (primitive, confidence,
        log-probability in the first reading's place for it, plus `alone_bonus` where the ink shows it
        drawn alone)."""
        residual, prepared = zip(*[self.residual(image, r) for image, r in zip(images, recognitions)])
        prepared = np.stack(prepared)
        found = self.recognize_prepared(prepared, [r.sheet for r in recognitions], rng)
        # Its segments keep the second reading's types: typing them costs another pass over its
        # tokens, and in a trial on the held-out drawings gained next to nothing.
        found = self.refined(prepared, residual, found, sheet_known, written, segment_types=False)
        return [with_ink_evidence(image, first.sheet, self.scored_candidates(first, unexplained(first, second)),
                                  alone_bonus) for image, first, second in zip(images, recognitions, found)]

    def residual(self, image: np.ndarray, recognition: Recognition) -> tuple[np.ndarray, np.ndarray]:
        """The image less what the recognition found (`refine.erase_primitives`), and it as the
        model's input."""
        residual = erase_primitives(image, recognition.sheet, recognition.primitives)
        return residual, prepare_image(residual, self.image_size)

    def scored_candidates(self, first: Recognition, new: Sequence[tuple[Primitive, float]]
                          ) -> list[tuple[Primitive, float, float]]:
        """(primitive, confidence) pairs -> (primitive, confidence, `_slot_logprobs` in the first reading)."""
        if not new or first.tokens is None or first.memory is None:
            return []
        scores = self._slot_logprobs(first, [p for p, _ in new])
        return [(p, c, float(score)) for (p, c), score in zip(new, scores)]

    def with_segment_types(self, recognition: Recognition) -> Recognition:
        """The recognition with each straight segment the model wrote (a line, or a two-point open
        polyline: the two are drawn alike) typed as whichever of the two the model finds likelier in
        its place, for the segment as measured.

        The model chooses a type before any coordinate: a short stroke begun as a polyline ends as a
        two-point one once traced, and a segment begun as a line stays one. Scored again with both ends
        known (each type in both point orders, followed by the token the model wrote next, which is
        where a polyline ends), the type follows the whole reading. On 600 held-out generated
        drawings (the README's `/tmp/heldout`, `/tmp/heldout2`, `/tmp/heldout3`) this matched 4 more
        of their 3,958 primitives."""
        segments = [(k, _segment_of(p) or p) for k, p in enumerate(recognition.primitives)
                    if isinstance(p, Line) or _segment_of(p) is not None]
        if not segments or recognition.tokens is None or recognition.memory is None or \
                len(recognition.spans) != len(recognition.primitives):
            return recognition
        starts, continuations = [], []
        for k, segment in segments:
            start, end = recognition.spans[k]
            after = [int(recognition.tokens[end])] if end < len(recognition.tokens) else []
            for variant in _segment_variants(segment):
                starts.append(start)
                continuations.append(tokenizer.encode_primitive(variant, recognition.sheet) + after)
        scores = self._continuation_logprobs(recognition, starts, continuations, SEGMENT_TOKENS)
        scores = scores.reshape(len(segments), 2, 2)  # (segment, line or polyline, point order)
        as_line, as_polyline = np.logaddexp(scores[..., 0], scores[..., 1]).T  # (segments,) each
        primitives = list(recognition.primitives)
        for (k, segment), line, polyline in zip(segments, as_line, as_polyline):
            primitives[k] = segment if line >= polyline else _segment_variants(segment)[2]
        return dataclasses.replace(recognition, primitives=primitives)

    def _continuation_logprobs(self, recognition: Recognition, starts: Sequence[int],
                               continuations: Sequence[list[int]], width: int) -> np.ndarray:
        """log p(continuation k | the image, the model's tokens before `starts[k]`) for each k, from one
        pass over the recognition's tokens; `starts` count from the first token after the prompt."""
        prompt = tokenizer.encode_prompt(recognition.sheet)
        sequence = prompt + [int(t) for t in recognition.tokens]
        return continuation_logprobs(self.split, jnp.asarray(recognition.memory)[None], sequence,
                                     [len(prompt) + start for start in starts], list(continuations),
                                     tokenizer.PAD, self.config.model.max_len, width=width)

    def _slot_logprobs(self, recognition: Recognition, candidates: Sequence[Primitive]) -> np.ndarray:
        """log p(candidate's tokens | the image, what the model wrote before the candidate's place in
        reading order) for each candidate, from one pass over the recognition's tokens; -inf for a
        candidate longer than CANDIDATE_TOKENS (a polyline of over 30 points)."""
        written = sorted(zip(recognition.spans, recognition.primitives), key=lambda pair: pair[0])
        end = len(recognition.tokens)  # where the model wrote its end token
        starts, continuations, fits = [], [], []
        for candidate in candidates:
            key = reading_order(candidate)
            slot = next((a for (a, _), p in written if reading_order(p) > key), end)
            tokens = tokenizer.encode_primitive(candidate, recognition.sheet)
            fits.append(len(tokens) <= CANDIDATE_TOKENS)
            starts.append(slot)
            continuations.append(tokens[:CANDIDATE_TOKENS])
        return np.where(fits, self._continuation_logprobs(recognition, starts, continuations, CANDIDATE_TOKENS), -np.inf)

    def warm_up_rereading(self) -> int:
        """Compiles what `reread_sizes`, `with_segment_types` and the second look's scoring run, for
        every shape they can take; -> the number of shapes."""
        blank = np.zeros((1, self.image_size, self.image_size, 1), np.float32)
        memory = embed_images(self.split, blank)
        widths = (SIZE_TOKENS, SEGMENT_TOKENS) + ((CANDIDATE_TOKENS,) if self.second_look else ())
        return sum(warm_up_continuations(self.split, memory, tokenizer.PAD, self.config.model.max_len, width=width)
                   for width in widths)

    def refined(self, prepared: np.ndarray, images: Sequence[np.ndarray], recognitions: list[Recognition],
                sheet_known: Sequence[bool] | None = None, written: Sequence | None = None,
                segment_types: bool = True) -> list[Recognition]:
        """What follows the model when `refine` is on: `measured_on` each full-size image, sizes read
        again with the ink's evidence (`reread_sizes`, only where the sheet size was given: an
        inferred sheet's millimetres are not the drawing's), arcs measured again with the radius read
        (`with_arcs_remeasured`), lone segments typed (`with_segment_types`, unless `segment_types` is
        off), then `without_repeats`. `prepared`: the
        images as the model saw them (B, S, S, 1); `written`: the numbers already read on each image
        (None: read them here)."""
        sheet_known = [True] * len(recognitions) if sheet_known is None else sheet_known
        written = [None] * len(recognitions) if written is None else written
        measured = [measured_on(image, r, sizes_from_ink=known, read_text=self.read_text, written=numbers,
                                text_finder=self.text_finder)
                    for image, r, known, numbers in zip(images, recognitions, sheet_known, written)]
        reread = self.reread_sizes(prepared, [r for r, _ in measured], [sizes for _, sizes in measured])
        reread = [with_arcs_remeasured(image, m, r) for image, (m, _), r in zip(images, measured, reread)]
        if segment_types:
            reread = [self.with_segment_types(r) for r in reread]
        return [without_repeats(r) for r in reread]

    def reread_sizes(self, prepared: np.ndarray, recognitions: list[Recognition],
                     measured: list[list[dict]]) -> list[Recognition]:
        """Each measured size read again, with the ink's evidence beside the model's.

        The model reads digits at its input size (glyphs a few pixels tall), the ink's measurement
        (`measure_primitives`) is precise to about a pixel of the full image but knows nothing of the
        0.1 mm the drafter wrote. For every value on the 0.1 mm grid within 3 INK_SIGMA_PX of the
        ink's size, the model scores the value's digits after what it wrote before them
        (`decode.continuation_logprobs`), the ink scores how far the value lies from its measurement
        (Gaussian, INK_SIGMA_PX), and the most likely value under both wins: the geometry says
        roughly how big, the glyphs say which value exactly. Drawings whose readings and ink disagree
        on the scale are left alone (`_size_jobs`).
        """
        jobs = [(d, k, job) for d, (r, sizes) in enumerate(zip(recognitions, measured))
                for k, job in enumerate(_size_jobs(r, sizes)) if job]
        if not jobs:
            return recognitions
        missing = sorted({d for d, _, _ in jobs if recognitions[d].memory is None})
        embedded = dict(zip(missing, embed_images(self.split, prepared[missing]))) if missing else {}
        best: dict[tuple[int, int, str], float] = {}
        for d in sorted({d for d, _, _ in jobs}):  # one call per drawing: all its sizes' candidates
            r = recognitions[d]
            sequence = tokenizer.encode_prompt(r.sheet) + [int(t) for t in r.tokens]
            rows = [(k, field, len(sequence) - len(r.tokens) + start, candidate)
                    for dd, k, fields in jobs if dd == d for field, start, candidates in fields
                    for candidate in candidates]
            memory = r.memory if r.memory is not None else embedded[d]
            scores = continuation_logprobs(self.split, jnp.asarray(memory)[None], sequence,
                                           [start for _, _, start, _ in rows],
                                           [digits for *_, (_, digits, _) in rows], tokenizer.PAD,
                                           self.config.model.max_len, width=SIZE_TOKENS)
            top: dict[tuple[int, str], float] = {}
            for (k, field, _, (value, _, prior)), score in zip(rows, scores):
                posterior = READING_WEIGHT * score + prior
                if posterior > top.get((k, field), -np.inf):  # the most likely under both
                    top[k, field], best[d, k, field] = posterior, value
        out = [dataclasses.replace(r, primitives=list(r.primitives)) for r in recognitions]
        for (d, k, field), value in best.items():
            out[d].primitives[k] = _with_size(out[d].primitives[k], field, value, out[d].sheet)
        return out

    def recognize_prepared(self, batch_images: np.ndarray, sheets: Sequence[Sheet], rng=None) -> list[Recognition]:
        """Images already through `prepare_image` (B, S, S, 1); pads the batch to a bucket size."""
        n = len(batch_images)
        size = next((b for b in BATCH_BUCKETS if b >= n), n)
        prompts = np.array([tokenizer.encode_prompt(s) for s in sheets], np.int32)
        limits = np.array([tokenizer.value_limits(s) for s in sheets], np.int32)
        if size > n:
            batch_images = np.concatenate([batch_images, np.zeros((size - n,) + batch_images.shape[1:],
                                                                  batch_images.dtype)])
            prompts = np.concatenate([prompts, np.repeat(prompts[:1], size - n, axis=0)])
            limits = np.concatenate([limits, np.repeat(limits[:1], size - n, axis=0)])
        memory = embed_images(self.split, batch_images)
        if self.engine is not None:
            tokens, logprobs = self.engine.generate(np.asarray(memory[:n]), sheets, self.options, limits[:n])
        else:
            tokens, logprobs = generate(self.split, None, prompts, self.grammar, self.options, rng, limits,
                                        memory=memory)
        found = programs_from_tokens(tokens[:n], logprobs[:n], sheets, self.info.get("confidence_power", 1.0))
        return [dataclasses.replace(r, memory=m) for r, m in zip(found, memory[:n])]
