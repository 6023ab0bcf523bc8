"""What follows the model, written once: named stages over one per-drawing context, and the runners.

A drawing goes through `STAGES` in order. Each stage says where it runs:
- POOL: any thread, one drawing at a time, no model (measuring on the ink, reading the numbers,
  erasing, the ink rules);
- MODEL: the model's thread, a batch of drawings at once (re-reading sizes, typing segments, scoring
  the second look's candidates: passes over tokens already written);
- DECODE: the model's decoder, on one look of each drawing (the first reading, the reading again on
  a sheet found from the numbers, the second look), batched across drawings.

`run_stages` executes them for a batch in the caller's thread (`predict`, `eval`, the ClearML-Serving
module); `run_stages_async` for one drawing, each stage where a server puts it (a pool for POOL
work, the model thread for MODEL work, a dynamic batcher for DECODE). Both run the same stages with
the same functions, so `serve` and `predict` answer one drawing alike (`tests/test_pipeline.py`).

Per drawing, the image's ink mask is computed once (`Look.ink`) and shared by every stage that
measures on it; the numbers are read once.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Awaitable, Callable, Sequence

import numpy as np

from cad2program.model.input_pipeline import prepare_image
from cad2program.contract.geometry import tolerance
from cad2program.contract.program import Circle, Sheet
from cad2program.reading.ink_rules import measured_on, with_arcs_remeasured, without_repeats, without_uninked_circles
from cad2program.reading.recognition import Recognition, infer_sheet
from cad2program.reading.second_look import unexplained, with_candidates, with_ink_evidence
from cad2program.reading.sizes import sheet_from_numbers
from cad2program.refine import Ink, erase_primitives
from cad2program.refine.circle_repeats import lone_rounds, repeated_circles
from cad2program.refine.joints import with_lines_ended_at_arcs

POOL, MODEL, DECODE = "pool", "model", "decode"


@dataclasses.dataclass(eq=False)
class Look:
    """One image as the model reads it, and its reading so far."""

    image: np.ndarray  # the full-resolution image (H, W) or (H, W, C), uint8
    prepared: np.ndarray  # (S, S, 1) float32: the model's input (`data.prepare_image`)
    recognition: Recognition | None = None
    measured: Recognition | None = None  # after `measure`, before its sizes were read again
    sizes: list[dict] | None = None  # the ink's sizes of each primitive of `measured`

    @functools.cached_property
    def ink(self) -> Ink:
        return Ink.of(self.image)


@dataclasses.dataclass(eq=False)
class Drawing:
    """One drawing's context: what every stage reads and writes."""

    first: Look
    sheet: Sheet  # as given, else inferred from the image (`infer_sheet`), or found from its numbers
    sheet_known: bool  # given, or found from the numbers: the ink's millimetres are the drawing's
    written: tuple | None = None  # `annotations.written_numbers` of the image (pixels); None: none read
    numbers_read: bool = False
    sheet_found: bool = False  # found from the numbers by `find_sheet`: the first look is read again on it
    second: Look | None = None  # the image less what the first look found (the second look)
    candidates: list = dataclasses.field(default_factory=list)  # (primitive, confidence, log-probability)
    misplaced_radii: tuple = ()  # of the circles `drop_uninked_circles` dropped

    @classmethod
    def of(cls, image: np.ndarray, sheet: Sheet | None, image_size: int, written: tuple | None = None,
           numbers_read: bool = False) -> "Drawing":
        """A drawing ready for the first stage: its image prepared for a model of `image_size`."""
        look = Look(image, prepare_image(image, image_size))
        return cls(look, sheet if sheet is not None else infer_sheet(image), sheet is not None, written, numbers_read)

    @property
    def result(self) -> Recognition:
        return self.first.recognition


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str
    where: str  # POOL, MODEL or DECODE (the module docstring)
    # POOL: (recognizer, drawing) -> None; MODEL: (recognizer, drawings) -> None; both update the
    # drawings. DECODE: (recognizer, drawing) -> the Look to read on the drawing's sheet, or None.
    run: Callable
    needs: tuple[str, ...] = ()  # the Recognizer's switches that must be on: refine, read_text, second_look


# ----------------------------------------------------------------------------------------------
# The stages' work. `recognizer` is a `Recognizer` (its model-side methods and its settings).
# ----------------------------------------------------------------------------------------------


def read_first(recognizer, drawing: Drawing) -> Look:
    return drawing.first


def read_numbers(recognizer, drawing: Drawing) -> None:
    if not drawing.numbers_read:
        first = drawing.first
        ink = first.ink.mask if first.ink.at_full_size(first.image) else None  # what the text finder needs
        drawing.written, drawing.numbers_read = recognizer.written_on(first.image, ink), True


def find_sheet(recognizer, drawing: Drawing) -> None:
    """Where the sheet was inferred, the real one from the numbers written on the drawing
    (`sizes.sheet_from_numbers`): the drawing is then read again on it, as if the user had given it."""
    if drawing.sheet_known:
        return
    found = sheet_from_numbers(drawing.first.image, drawing.first.recognition, drawing.written,
                               recognizer.settings, ink=drawing.first.ink)
    if found is not None:
        drawing.sheet, drawing.sheet_known, drawing.sheet_found = found, True, True


def read_on_found_sheet(recognizer, drawing: Drawing) -> Look | None:
    return drawing.first if drawing.sheet_found else None


def measure(look: str, recognizer, drawing: Drawing) -> None:
    """The look's primitives re-measured on its ink, those the ink does not show dropped
    (`ink_rules.measured_on`); the sizes from the ink only on a known sheet."""
    view = getattr(drawing, look)
    view.measured, view.sizes = measured_on(view.image, view.recognition, drawing.sheet_known, drawing.written,
                                            recognizer.settings, ink=view.ink)
    view.recognition = view.measured


def reread_sizes(look: str, recognizer, drawings: Sequence[Drawing]) -> None:
    """Each measured size read again with the ink's evidence (`Recognizer.reread_sizes`)."""
    views = [getattr(d, look) for d in drawings]
    reread = recognizer.reread_sizes(np.stack([v.prepared for v in views]), [v.measured for v in views],
                                     [v.sizes for v in views])
    for view, recognition in zip(views, reread):
        view.recognition = recognition


def remeasure_arcs(look: str, recognizer, drawing: Drawing) -> None:
    """Arcs whose radius was read anew measured again with it (`ink_rules.with_arcs_remeasured`)."""
    view = getattr(drawing, look)
    view.recognition = with_arcs_remeasured(view.ink, view.measured, view.recognition)


def type_segments(recognizer, drawings: Sequence[Drawing]) -> None:
    """Each lone segment typed as a line or a two-point polyline (`Recognizer.with_segment_types`)."""
    for drawing in drawings:
        drawing.first.recognition = recognizer.with_segment_types(drawing.first.recognition)


def drop_repeats(look: str, recognizer, drawing: Drawing) -> None:
    view = getattr(drawing, look)
    view.recognition = without_repeats(view.recognition)


def erase_found(recognizer, drawing: Drawing) -> None:
    """The second look's image: the drawing less the strokes of what the first look found."""
    first = drawing.first
    paper = first.ink.paper if first.ink.at_full_size(first.image) else None
    residual = erase_primitives(first.image, drawing.sheet, first.recognition.primitives, paper)
    drawing.second = Look(residual, prepare_image(residual, recognizer.image_size))


def read_second(recognizer, drawing: Drawing) -> Look:
    return drawing.second


def score_candidates(recognizer, drawings: Sequence[Drawing]) -> None:
    """What the second look found that the first lacks, scored in the first reading's place for it."""
    for d in drawings:
        d.candidates = recognizer.scored_candidates(d.first.recognition,
                                                    unexplained(d.first.recognition, d.second.recognition))


def weigh_ink_evidence(recognizer, drawing: Drawing) -> None:
    drawing.candidates = with_ink_evidence(drawing.first.ink, drawing.sheet, drawing.candidates,
                                           recognizer.settings.drawn_alone_bonus)


def add_candidates(recognizer, drawing: Drawing) -> None:
    drawing.first.recognition = with_candidates(drawing.first.recognition, drawing.candidates,
                                                recognizer.settings.second_look_min_logprob)


def drop_uninked_circles(recognizer, drawing: Drawing) -> None:
    """Done last: a first reading's circle placed off its ink still marks where the second look's
    candidate for that circle belongs in reading order (`Recognizer.scored_candidates`). The radii of
    the circles dropped are kept: the size was often read right from its `Ø` where the place was not."""
    before = drawing.first.recognition
    drawing.first.recognition = without_uninked_circles(drawing.first.ink, before, recognizer.settings)
    kept = drawing.first.recognition.primitives
    drawing.misplaced_radii = tuple(p.radius for p in before.primitives if isinstance(p, Circle) and p not in kept)


def join_lines_to_arcs(recognizer, drawing: Drawing) -> None:
    """After every arc's end is final: a line running on into an arc along its tangent ends where the arc
    begins (`refine.joints`)."""
    found = drawing.first.recognition
    joined = with_lines_ended_at_arcs(found.primitives, tolerance(found.sheet))
    if joined != found.primitives:
        drawing.first.recognition = dataclasses.replace(found, primitives=joined)


MISPLACED_CONFIDENCE = 0.5  # a circle found at the radius of a misplaced one: a guess of moderate trust


def add_repeated_circles(recognizer, drawing: Drawing) -> None:
    """After the circles off their ink are gone: more circles of the radius of one found, or of one dropped
    there, where the ink shows them (`refine.circle_repeats`), each as confident as the least confident
    circle found of that radius (else MISPLACED_CONFIDENCE)."""
    found = drawing.first.recognition
    new = repeated_circles(drawing.first.ink, found.sheet, found.primitives, recognizer.settings.repeat_circle_inked,
                           drawing.misplaced_radii)
    if new:
        seeds = {}
        for p, c in zip(found.primitives, found.confidences):
            if isinstance(p, Circle):
                seeds[p.radius] = min(c, seeds.get(p.radius, 1.0))
        drawing.first.recognition = dataclasses.replace(
            found, primitives=found.primitives + new, spans=[],
            confidences=found.confidences + [seeds.get(p.radius, MISPLACED_CONFIDENCE) for p in new])


LONE_CONFIDENCE = 0.5  # a circle the model did not write: a guess of moderate trust


def add_lone_rounds(recognizer, drawing: Drawing) -> None:
    """Last: small rounds of ink on their own that no circle explains (`refine.circle_repeats.lone_rounds`),
    each at LONE_CONFIDENCE."""
    found, ink = drawing.first.recognition, drawing.first.ink
    scale = ink.mask.shape[1] / drawing.first.image.shape[1]  # the numbers' pixels are the image's
    texts = [(n.col * scale, n.row * scale) for n in drawing.written or ()]
    new = lone_rounds(ink, found.sheet, found.primitives, recognizer.settings.lone_round_inked, texts)
    if new:
        drawing.first.recognition = dataclasses.replace(
            found, primitives=found.primitives + new, spans=[],
            confidences=found.confidences + [LONE_CONFIDENCE] * len(new))


_REFINE, _TEXT, _SECOND = ("refine",), ("refine", "read_text"), ("refine", "second_look")

STAGES: tuple[Stage, ...] = (
    Stage("read", DECODE, read_first),
    Stage("read numbers", POOL, read_numbers, _TEXT),
    Stage("find sheet", POOL, find_sheet, _TEXT),
    Stage("read on found sheet", DECODE, read_on_found_sheet, _TEXT),
    Stage("measure", POOL, functools.partial(measure, "first"), _REFINE),
    Stage("reread sizes", MODEL, functools.partial(reread_sizes, "first"), _REFINE),
    Stage("remeasure arcs", POOL, functools.partial(remeasure_arcs, "first"), _REFINE),
    Stage("type segments", MODEL, type_segments, _REFINE),
    Stage("drop repeats", POOL, functools.partial(drop_repeats, "first"), _REFINE),
    # The second look. Its segments keep the second reading's types: typing them costs another pass
    # over its tokens, and in a trial on the held-out drawings gained next to nothing.
    Stage("erase found", POOL, erase_found, _SECOND),
    Stage("read second", DECODE, read_second, _SECOND),
    Stage("measure second", POOL, functools.partial(measure, "second"), _SECOND),
    Stage("reread second sizes", MODEL, functools.partial(reread_sizes, "second"), _SECOND),
    Stage("remeasure second arcs", POOL, functools.partial(remeasure_arcs, "second"), _SECOND),
    Stage("drop second repeats", POOL, functools.partial(drop_repeats, "second"), _SECOND),
    Stage("score candidates", MODEL, score_candidates, _SECOND),
    Stage("weigh ink evidence", POOL, weigh_ink_evidence, _SECOND),
    Stage("add candidates", POOL, add_candidates, _SECOND),
    Stage("drop uninked circles", POOL, drop_uninked_circles, _REFINE),
    Stage("join lines to arcs", POOL, join_lines_to_arcs, _REFINE),
    Stage("repeat circles", POOL, add_repeated_circles, _REFINE),
    Stage("find lone rounds", POOL, add_lone_rounds, _REFINE),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def stages_for(switches: Any, until: str | None = None) -> list[Stage]:
    """The stages a recognizer with these switches (`refine`, `read_text`, `second_look` attributes)
    runs, in order; `until`: only those before the stage of that name."""
    if until is not None and until not in STAGE_NAMES:
        raise ValueError(f"no stage {until!r}: one of {', '.join(STAGE_NAMES)}")
    out = []
    for stage in STAGES:
        if stage.name == until:
            break
        if all(getattr(switches, switch) for switch in stage.needs):
            out.append(stage)
    return out


def run_stages(recognizer, drawings: Sequence[Drawing], stages: Sequence[Stage], rng=None) -> None:
    """Runs the stages over a batch of drawings in this thread; DECODE stages decode the batch's
    looks in one call (`Recognizer.recognize_prepared`)."""
    for stage in stages:
        if stage.where == POOL:
            for drawing in drawings:
                stage.run(recognizer, drawing)
        elif stage.where == MODEL:
            stage.run(recognizer, drawings)
        else:
            todo = [(d, look) for d in drawings for look in [stage.run(recognizer, d)] if look is not None]
            if todo:
                found = recognizer.recognize_prepared(np.stack([look.prepared for _, look in todo]),
                                                      [d.sheet for d, _ in todo], rng)
                for (_, look), recognition in zip(todo, found):
                    look.recognition = recognition


async def run_stages_async(recognizer, drawing: Drawing, stages: Sequence[Stage],
                           on_pool: Callable[..., Awaitable], on_model: Callable[..., Awaitable],
                           decode: Callable[[np.ndarray, Sheet], Awaitable[Recognition]]) -> None:
    """Runs the stages for one drawing, each where the caller puts it: `on_pool(fn, *args)` and
    `on_model(fn, *args)` await a call in a thread pool and on the model's thread, `decode(prepared,
    sheet)` awaits a reading (a server's dynamic batcher)."""
    for stage in stages:
        if stage.where == POOL:
            await on_pool(stage.run, recognizer, drawing)
        elif stage.where == MODEL:
            await on_model(stage.run, recognizer, [drawing])
        else:
            look = stage.run(recognizer, drawing)
            if look is not None:
                look.recognition = await decode(look.prepared, drawing.sheet)
