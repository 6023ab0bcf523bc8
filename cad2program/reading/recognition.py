"""A drawing's result (`Recognition`), made from the model's tokens, and how confident it is.

Knows the tokenizer and the program types, nothing of images or the model.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from cad2program.contract import tokenizer
from cad2program.contract.program import Primitive, Sheet, program_problems
from cad2program.contract.program_text import format_program

# Without a sheet size, the longer side of the image is taken as this many mm (an A4 sheet's long side).
DEFAULT_LONGER_SIDE_MM = 297


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


def with_only(recognition: Recognition, keep: Sequence[int], primitives: Sequence[Primitive] | None = None,
          **changes) -> Recognition:
    """The recognition with only the primitives at indices `keep` (of `primitives`, when given: the
    recognition's own re-measured), their confidences and spans with them."""
    primitives = recognition.primitives if primitives is None else primitives
    spans = recognition.spans if len(recognition.spans) == len(primitives) else []
    return dataclasses.replace(recognition, primitives=[primitives[k] for k in keep],
                               confidences=[recognition.confidences[k] for k in keep],
                               spans=[spans[k] for k in keep] if spans else [], **changes)


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
