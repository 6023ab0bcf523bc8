"""Rules that judge what the model read by the ink it should lie on, and tidy the result.

Each takes a recognition and the image (or its `refine.Ink`, computed once per image) and returns
a new recognition; the thresholds come from the model's `ReadingSettings`. None needs the model.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from cad2program.contract.geometry import pair_error, tolerance
from cad2program.contract.program import Line, Polyline, Primitive, Sheet
from cad2program.reading.recognition import Recognition, with_only
from cad2program.reading.settings import DEFAULT_SETTINGS, ReadingSettings
from cad2program.reading.sizes import with_read_sizes, written_in_mm
from cad2program.refine import Ink, as_ink, inked_rounds, longest_side, measure_primitives, remeasure_arcs


def arrowhead_sized(primitive: Primitive, sheet: Sheet, settings: ReadingSettings = DEFAULT_SETTINGS) -> bool:
    """Whether a primitive is a closed polyline whose every side is under `settings.arrowhead_sides`
    matching tolerances: an arrowhead the model took for an outline."""
    return (isinstance(primitive, Polyline) and primitive.closed
            and longest_side(primitive) < settings.arrowhead_sides * tolerance(sheet))


def measured_on(image: np.ndarray, recognition: Recognition, sizes_from_ink: bool = True,
                written: tuple | None = None, settings: ReadingSettings = DEFAULT_SETTINGS,
                ink: Ink | None = None) -> tuple[Recognition, list[dict]]:
    """The recognition with its primitives re-measured on the image's ink (`ink`, when the caller
    has it), those without ink where they should be drawn (`settings.min_ink_share`) and
    arrowhead-sized outlines left out, and the sizes the ink shows for each one kept
    (`refine.measure_primitives`). `sizes_from_ink=False` keeps the sizes the model read (an inferred
    sheet: the ink's millimetres are not the drawing's). `written`: the numbers an OCR engine read
    on the image (`annotations.written_numbers`), kept on the result in sheet millimetres for
    `Recognizer.reread_sizes` when the sizes come from the ink."""
    primitives, sizes = measure_primitives(ink if ink is not None else image, recognition.sheet,
                                           recognition.primitives)
    if not sizes_from_ink:
        primitives = [with_read_sizes(new, old, recognition.sheet) for new, old in zip(primitives, recognition.primitives)]
    keep = [k for k, (p, size) in enumerate(zip(primitives, sizes))
            if size.get("ink_share", 1.0) >= settings.min_ink_share_of(p)
            and not arrowhead_sized(p, recognition.sheet, settings)]
    if not sizes_from_ink:
        written = None
    if written is not None:
        written = written_in_mm(written, image, recognition.sheet)
    kept = with_only(recognition, keep, primitives, written=written)
    return kept, [sizes[k] for k in keep] if sizes_from_ink else [{} for _ in keep]


def without_uninked_circles(ink: Ink | np.ndarray, recognition: Recognition,
                            settings: ReadingSettings = DEFAULT_SETTINGS) -> Recognition:
    """The recognition less the circles whose round is inked under `settings.circle_inked`
    (`refine.inked_rounds`; `ink`: the image or its `Ink`).

    On held-out generated drawings, matched circles were inked nearly all round and nearly every
    unmatched one under 70% (a throwaway probe); held-out F1 rose with the rule. Done last, after the
    second look: a first reading's circle placed off its ink still marks where the second look's candidate for that circle belongs in reading order
    (`Recognizer._slot_logprobs`)."""
    shares = inked_rounds(as_ink(ink), recognition.sheet, recognition.primitives)
    keep = [k for k, share in enumerate(shares) if share is None or share >= settings.circle_inked]
    return recognition if len(keep) == len(shares) else with_only(recognition, keep)


def with_arcs_remeasured(ink: Ink | np.ndarray, measured: Recognition, reread: Recognition) -> Recognition:
    """`reread` (`measured` with sizes read again) with each arc whose radius changed measured again
    on the ink (the image or its `Ink`) with its new radius (`refine.remeasure_arcs`)."""
    return dataclasses.replace(reread, primitives=remeasure_arcs(ink, reread.sheet, measured.primitives,
                                                                 reread.primitives))


def segment_of(primitive: Primitive) -> Line | None:
    """A two-point open polyline as the line it is drawn as; None for anything else."""
    if isinstance(primitive, Polyline) and len(primitive.points) == 2 and not primitive.closed:
        (x1, y1), (x2, y2) = primitive.points
        return Line(x1, y1, x2, y2)
    return None


def segment_variants(segment: Line) -> tuple[Line, Line, Polyline, Polyline]:
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
        segment = segment_of(primitives[i])
        if segment is not None and any(pair_error(segment, line, recognition.sheet) is not None for line in lines):
            continue
        if not any(type(primitives[i]) is type(primitives[k])
                   and pair_error(primitives[i], primitives[k], recognition.sheet) is not None for k in kept):
            kept.append(i)
    return with_only(recognition, sorted(kept))
