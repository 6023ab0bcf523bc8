"""The second look: what a second reading of the drawing, with what the first found erased, adds.

The model sometimes leaves out a primitive it plainly sees (a line among many, in a busy drawing). On
the residual image (`refine.erase_primitives`) that primitive stands alone and is read, but so are
false ones: the annotations of erased primitives, orphaned, look like parts of something. Each
candidate is therefore scored by the first reading: the log-probability of its tokens where the
program's reading order puts it (`Recognizer.scored_candidates`), plus a bonus for a polyline drawn
as a stroke of its own (`with_ink_evidence`); a missed primitive scores far above an orphaned
annotation's (`ReadingSettings.second_look_min_logprob`). The stages that run it: `pipeline`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from cad2program.contract.geometry import pair_error
from cad2program.contract.program import Primitive, Sheet
from cad2program.reading.ink_rules import without_repeats
from cad2program.reading.recognition import Recognition
from cad2program.reading.settings import DEFAULT_SETTINGS
from cad2program.refine import Ink, drawn_alone


def with_ink_evidence(ink: Ink | np.ndarray, sheet: Sheet, candidates: Sequence[tuple[Primitive, float, float]],
                      bonus: float = DEFAULT_SETTINGS.drawn_alone_bonus) -> list[tuple[Primitive, float, float]]:
    """The second look's (primitive, confidence, log-probability) candidates, those drawn alone on the
    image (`refine.drawn_alone`; `ink`: the first image or its `Ink`) with `bonus` added to their
    log-probability."""
    return with_alone_bonus(candidates, drawn_alone(ink, sheet, [p for p, _, _ in candidates]), bonus)


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
