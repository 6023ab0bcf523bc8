"""Measuring circles and arcs on the ink.

A circle keeps the radius read from its `Ø` annotation; its centre, and the ink's radius (for
re-reading the size), are measured. How an arc is refined:
1. The ink: pixels clearly darker than the paper around them (`ink_mask`), so scans and photos with
   uneven light work as clean output does.
2. The circle the arc lies on: the centre is searched within the matching tolerance of the model's
   (the radius stays the model's: it was read from the `R` annotation) for the circle whose
   predicted span holds the most ink.
3. Along that circle, each degree is ink or paper (within a thin band, to allow for line width and a
   hand's wobble); gaps of a few degrees (a crossing line's gap, a sketchy stroke) are closed.
4. The run of ink that overlaps the model's span most gives the new start and end angles. When no run
   overlaps enough, or the ink goes all round (a concentric circle), the model's angles are kept.
5. The circle is settled by a least-squares fit to every pixel of that run's stroke (the grid of step 2
   leaves a short arc's centre free to slide along its middle), and its run measured again.
6. Where a centre mark (a small upright cross) is drawn near that centre, the circle is centred on it,
   its radius the stroke's middle, and its run measured again.
7. An end where a straight line leaves the arc along its tangent (a slot's side, a fillet's edge) is
   moved to the tangent point: within the thin band the line's ink stays on the circle for a while
   past it (about acos(r / (r + band)), 15 to 25 degrees on a part's arcs), and the run would hold it.
   The line's ink beyond the band is fitted and its foot from the centre is where the arc ends.
8. Each other end is drawn back by half the stroke's width: a pen's round end reaches that far past
   the arc.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from cad2program.contract.geometry import tolerance
from cad2program.contract.program import Arc, Circle, Primitive, Sheet
from cad2program.refine.along_circle import (centre_mark, close_gaps, fit_circle, ink_pixels_near, inked_degrees,
                                             least_squares_circle, max_gap, near_stroke, run_degrees, runs,
                                             span_degrees, stroke_half_width)
from cad2program.refine.ink import MIN_OVERLAP, Frame, Ink, as_ink, band_width

ARC_REFITS = 1  # fits of an arc's circle again, to the span of its ink
ARC_CENTRE_REACH = 2.0  # arc centres are searched this many tolerances from the model's (held-out F1 up)
ARC_MIN_RUN = 15  # degrees of ink that an arc whose span the model misplaced must show
CIRCLE_INKED = 0.7  # share of its round a circle's ink must cover to be measured (and kept: `recognizer`)
ARC_SETTLING_ROUNDS = 3  # least-squares fits of an arc's circle, each to the ink around the last
ARC_MIN_SPAN = 5  # degrees an arc keeps at least when its ends are drawn back by the pen's round caps
MARK_REACH = 1.5  # tolerances from an arc's measured centre within which its centre mark is looked for
TANGENT_SWEEP = 40  # degrees past an arc's end in which a line leaving it along its tangent is looked for
TANGENT_MIN_PIXELS = 12  # pixels of a tangent beyond the band too few to tell a leaving line by
TANGENT_COVERAGE = 0.9  # share of those pixels' stretch a leaving line's ink covers


def _ink_span_near(ink: np.ndarray, centre: tuple[float, float], radius_px: float, tolerance_px: float,
                   predicted: np.ndarray, band: int) -> np.ndarray | None:
    """(360,) the degrees of the run of ink nearest the model's span on the circle that carries most ink
    near the model's, for an arc whose span has little ink: the model saw the circle but not which
    part of it is drawn. None when that circle shows no run of ARC_MIN_RUN degrees."""
    fitted = fit_circle(ink, *centre, radius_px, tolerance_px, np.ones(360, bool), band, ARC_CENTRE_REACH)
    if fitted is None:
        return None
    found = [run for run in runs(close_gaps(fitted[3], max_gap(fitted[2]))) if ARC_MIN_RUN <= run[1] < 358]
    if not found:
        return None
    span = np.flatnonzero(predicted)

    def distance(run: tuple[int, int]) -> float:
        degrees = (run[0] + np.arange(run[1])) % 360
        gaps = np.abs(degrees[:, None] - span[None, :])
        return float(np.minimum(gaps, 360 - gaps).min())

    first, length = min(found, key=distance)
    return run_degrees((first, length))


def _tangent_end(ink: np.ndarray, col: float, row: float, radius: float, end: float, outward: int, band: int,
                 half_width: float) -> float | None:
    """The angle (degrees) of the tangent point where a straight line leaves the circle (pixels) near its
    run's `end`, going on in the direction `outward` (+1 counter-clockwise past the run's last degree,
    -1 clockwise past its first); None when no such line is drawn there.

    A line tangent at angle T stays within `band` of the circle up to acos(r / (r + band)) past T, so the
    run of ink reaches that far (further where text or a leader crosses the circle there). Beyond, its
    ink leaves the circle outwards. Each candidate T in the run's last degrees is scored by the share of
    its tangent's stretch from the band out to 0.45 r (more on a small arc), on its outward side, that
    ink further out than the stroke's own width covers; the best T is kept when its tangent is drawn all
    along that stretch (ties: the tangent down the stroke's middle)."""
    overshoot = np.degrees(np.arccos(radius / (radius + band + half_width + 1)))
    cols, rows = ink_pixels_near(ink, col, row, int(1.6 * radius + band + 4))
    dx, dy = (cols - col).astype(np.float64), (row - rows).astype(np.float64)  # y up on the sheet
    offset = np.hypot(dx, dy) - radius
    near = 2 * half_width + band + 1
    far = max(0.45 * radius, 3 * near)  # a small arc: a stretch long enough to tell a line by
    off = (offset > near) & (offset < far)
    dx, dy = dx[off], dy[off]
    if len(dx) < TANGENT_MIN_PIXELS:
        return None
    candidates = end - outward * np.arange(-1.0, 2 * overshoot + 5.0, 0.25)  # (K,) back into the run
    theta = np.radians(candidates)[:, None]  # (K, 1) against the pixels (1, N)
    across = dx[None, :] * np.cos(theta) + dy[None, :] * np.sin(theta) - radius  # off the tangent at T
    along = outward * (-dx[None, :] * np.sin(theta) + dy[None, :] * np.cos(theta))  # beyond T, outwards
    near_along, far_along = (np.sqrt((radius + d) ** 2 - radius ** 2) for d in (near, far))
    on_line = (np.abs(across) <= half_width + 1.0) & (along >= near_along) & (along < far_along)
    # A leaving line's ink covers the whole stretch of its tangent from the band out; text or a line
    # crossing there covers a few pixels of it.
    bins = max(1, int(far_along - near_along))
    index = np.clip((along - near_along).astype(np.int64), 0, bins - 1)
    covered = np.zeros((len(candidates), bins), bool)
    rows_k, cols_n = np.nonzero(on_line)
    covered[rows_k, index[rows_k, cols_n]] = True
    drawn = covered.mean(axis=1) >= TANGENT_COVERAGE
    if bins < TANGENT_MIN_PIXELS or not drawn.any():
        return None
    best = int(np.argmax(np.where(drawn, on_line.sum(axis=1), -1)))  # the tangent down the stroke's middle
    return float(candidates[best] % 360.0)


def _settled_arc(ink: np.ndarray, circle: tuple[float, float, float], run: tuple[int, int], read_radius: float,
                 half_width: float, band: int, tolerance_px: float) -> tuple[tuple[float, float, float], np.ndarray] | None:
    """The circle (col, row, radius; pixels) an arc's stroke settles on and (360,) which degrees have
    ink along it, or None when the settled circle is not to be trusted.

    The grid's best `circle` is one of many that hold about as much ink (on a short arc the centre
    slides along its middle as the radius changes): the least-squares circle through every pixel of
    the stroke in the degrees of `run` settles it. It is trusted within the tolerance of the grid's
    centre, and where its radius agrees with the grid's or with the one read (a hand's wobble bends
    a small arc's stroke off any circle, and the fit follows it)."""
    col, row, radius = circle
    settled = least_squares_circle(ink, col, row, radius, run_degrees(run), max(band, half_width) + 1,
                                    ARC_SETTLING_ROUNDS)
    if not settled or np.hypot(settled[0] - col, settled[1] - row) > tolerance_px or \
            min(abs(settled[2] - radius), abs(settled[2] - read_radius)) > band + 1:
        return None
    return settled, inked_degrees(ink, *settled, band)


def _marked_arc(ink: np.ndarray, circle: tuple[float, float, float], run: tuple[int, int], band: int,
                half_width: float, tolerance_px: float) -> tuple[tuple[float, float, float], np.ndarray] | None:
    """The circle (col, row, radius; pixels) centred on the centre mark drawn near an arc's `circle`
    (`_centre_mark`), through the middle of the arc's stroke in the degrees of `run`, and (360,) which
    degrees have ink along it; None without a mark, or where that circle's radius is more than the
    tolerance from the arc's (the mark is another's).

    A short arc's ink leaves its centre loose (it slides along the arc's middle as the radius
    changes); a drafter's centre mark pins it."""
    col, row, radius = circle
    mark = centre_mark(ink, col, row, max(2, int(MARK_REACH * tolerance_px)), band)
    if mark is None:
        return None
    reach = max(band, half_width) + 1
    cols, rows = ink_pixels_near(ink, col, row, int(radius + 2 * reach + 2))
    keep = near_stroke(cols, rows, col, row, radius, run_degrees(run), reach)
    if keep.sum() < 12:
        return None
    new_radius = float(np.median(np.hypot(cols[keep] - mark[0], mark[1] - rows[keep])))
    if abs(new_radius - radius) > tolerance_px:
        return None
    return (mark[0], mark[1], new_radius), inked_degrees(ink, mark[0], mark[1], new_radius, band)


def refine_arc(arc: Arc, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> tuple[Arc, dict]:
    """The arc with its centre and angles re-measured on the ink (see the module's docstring), and
    {"radius": the ink's radius in mm} when the ink shows the arc."""
    scale = frame.px_per_mm
    radius_px = arc.radius * scale
    predicted = span_degrees(arc.start_angle, arc.end_angle)
    if radius_px < 4 or not predicted.any():  # too small to measure angles on
        return arc, {}
    band = band_width(ink)
    centre = frame.to_px(arc.x, arc.y)
    fitted = fit_circle(ink, *centre, radius_px, tolerance_mm * scale, predicted, band, ARC_CENTRE_REACH)
    if fitted is None:
        return arc, {}
    col, row, radius, along = fitted
    if (along & predicted).sum() < MIN_OVERLAP * predicted.sum():
        predicted = _ink_span_near(ink, centre, radius_px, tolerance_mm * scale, predicted, band)
        if predicted is None:
            return arc, {}  # no circle of ink where the model saw the arc
        fitted = fit_circle(ink, *centre, radius_px, tolerance_mm * scale, predicted, band, ARC_CENTRE_REACH)
        if fitted is None:
            return arc, {}
        col, row, radius, along = fitted
    measured = {"radius": radius / scale, "mm_per_px": 1 / scale}
    candidates = runs(close_gaps(along, max_gap(radius)))
    if not candidates or candidates == [(0, 360)]:
        return arc, measured

    def overlap(run: tuple[int, int]) -> int:
        first, length = run
        return int(predicted[(first + np.arange(length)) % 360].sum())

    first, length = max(candidates, key=overlap)
    if overlap((first, length)) < MIN_OVERLAP * predicted.sum() or length >= 358:
        return arc, measured
    for _ in range(ARC_REFITS):
        # The model's span may miss part of the arc: fit the circle again to the ink's span.
        span = predicted | run_degrees((first, length))
        # ... from the circle found so far: a model's centre off by about the tolerance leaves the
        # first fit at the edge of its search.
        fitted = fit_circle(ink, col, row, radius, tolerance_mm * scale, span, band)
        found = fitted and runs(close_gaps(fitted[3], max_gap(fitted[2])))
        if not found or found == [(0, 360)] or overlap(max(found, key=overlap)) < MIN_OVERLAP * predicted.sum():
            break
        col, row, radius, along = fitted
        first, length = max(found, key=overlap)
        measured["radius"] = radius / scale
    half_width = stroke_half_width(ink, col, row, radius, first, length, band)

    def run_on(circle_and_degrees):
        """A better circle's (circle, its run of ink overlapping the model's span most), or None when
        no run along it overlaps enough."""
        circle, on = circle_and_degrees
        found = [run for run in runs(close_gaps(on, max_gap(circle[2]))) if run[1] < 358]
        if found and overlap(max(found, key=overlap)) >= MIN_OVERLAP * predicted.sum():
            return circle, max(found, key=overlap)
        return None

    settled = _settled_arc(ink, (col, row, radius), (first, length), radius_px, half_width, band,
                           tolerance_mm * scale)
    if settled and (taken := run_on(settled)):
        (col, row, radius), (first, length) = taken
    marked = _marked_arc(ink, (col, row, radius), (first, length), band, half_width, tolerance_mm * scale)
    if marked and (taken := run_on(marked)):
        (col, row, radius), (first, length) = taken
        half_width = stroke_half_width(ink, col, row, radius, first, length, band)
    measured["radius"] = radius / scale
    # An end where a line leaves along the tangent ends at the tangent point; elsewhere a pen's round
    # end reaches half the stroke's width past where the arc ends.
    cap = np.degrees(half_width / radius)
    cap = cap if length - 2 * cap > ARC_MIN_SPAN else 0.0
    start, end = (first + cap) % 360, (first + length - cap) % 360
    start_tangent = _tangent_end(ink, col, row, radius, first, -1, band, half_width)
    end_tangent = _tangent_end(ink, col, row, radius, first + length, +1, band, half_width)
    start = start if start_tangent is None else start_tangent
    end = end if end_tangent is None else end_tangent
    if (end - start) % 360 < ARC_MIN_SPAN:
        start, end = (first + cap) % 360, (first + length - cap) % 360
    x, y = frame.to_mm(col, row)
    start, end = round(start, 1) % 360, round(end, 1) % 360
    refined = dataclasses.replace(arc, x=round(x, 1), y=round(y, 1), start_angle=start, end_angle=end)
    return (refined, measured) if not refined.problems(frame.sheet) else (arc, measured)


def remeasure_arcs(ink: Ink | np.ndarray, sheet: Sheet, measured: Sequence[Primitive], read: Sequence[Primitive],
                   tolerance_mm: float | None = None) -> list[Primitive]:
    """`read` (the `measured` primitives, some sizes read again) with each arc whose radius changed
    measured again on the ink with its new radius: among the circles that a short arc's stroke fits
    about equally well, the radius read picks the one drawn (`refine_arc`)."""
    changed = [k for k, (old, new) in enumerate(zip(measured, read)) if isinstance(new, Arc) and new.radius != old.radius]
    if not changed:
        return list(read)
    ink = as_ink(ink)
    ink, frame = ink.mask, ink.frame(sheet)
    tolerance_mm = tolerance(sheet) if tolerance_mm is None else tolerance_mm
    out = list(read)
    for k in changed:
        out[k] = refine_arc(read[k], ink, frame, tolerance_mm)[0]
    return out


def _inked_circle(circle: Circle, ink: np.ndarray, frame: Frame, tolerance_mm: float
                  ) -> tuple[float, tuple[float, float, float, np.ndarray] | None]:
    """(the share of the round inked, the `_fit_circle` fit) for the circle that carries most ink
    within the tolerance of the one read; (1.0, None) for a circle too small to measure."""
    scale = frame.px_per_mm
    if circle.radius * scale < 3:
        return 1.0, None
    fitted = fit_circle(ink, *frame.to_px(circle.x, circle.y), circle.radius * scale, tolerance_mm * scale,
                         np.ones(360, bool), band_width(ink))
    return (0.0 if fitted is None else float(close_gaps(fitted[3], max_gap(fitted[2])).mean())), fitted


def refine_circle(circle: Circle, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> tuple[Circle, dict]:
    """The circle's centre re-measured on the ink (its radius stays the one read from the `Ø`
    annotation), and {"radius": the ink's radius in mm} when at least CIRCLE_INKED of its round is."""
    inked, fitted = _inked_circle(circle, ink, frame, tolerance_mm)
    if fitted is None or inked < CIRCLE_INKED:
        return circle, {}
    band, scale = band_width(ink), frame.px_per_mm
    col, row, radius, along = fitted
    settled = least_squares_circle(ink, col, row, radius, along, band + 1)
    radius = settled[2] if settled and abs(settled[2] - radius) <= band + 1 else radius
    x, y = frame.to_mm(col, row)
    refined = dataclasses.replace(circle, x=round(x, 1), y=round(y, 1))
    return (refined if not refined.problems(frame.sheet) else circle), {"radius": radius / scale,
                                                                         "mm_per_px": 1 / scale}


def inked_rounds(ink: Ink | np.ndarray, sheet: Sheet, primitives: Sequence[Primitive]) -> list[float | None]:
    """For each circle, the share of its round that is inked (on the circle carrying most ink within
    the matching tolerance of it); None for the other primitives."""
    if not any(isinstance(p, Circle) for p in primitives):
        return [None] * len(primitives)
    ink = as_ink(ink)
    ink, frame = ink.mask, ink.frame(sheet)
    tolerance_mm = tolerance(sheet)
    return [_inked_circle(p, ink, frame, tolerance_mm)[0] if isinstance(p, Circle) else None for p in primitives]
