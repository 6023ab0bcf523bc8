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
7. Each end is drawn back by half the stroke's width: a pen's round end reaches that far past the arc.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from cad2program.contract.geometry import tolerance
from cad2program.contract.program import Arc, Circle, Primitive, Sheet
from cad2program.refine.ink import MIN_OVERLAP, Frame, Ink, as_ink, band_width

MAX_GAP_DEGREES = 4  # gaps of ink this short along an arc are closed
ARC_REFITS = 1  # fits of an arc's circle again, to the span of its ink
ARC_CENTRE_REACH = 2.0  # arc centres are searched this many tolerances from the model's (held-out F1 up)
ARC_MIN_RUN = 15  # degrees of ink that an arc whose span the model misplaced must show
CIRCLE_INKED = 0.7  # share of its round a circle's ink must cover to be measured (and kept: `recognizer`)
ARC_SETTLING_ROUNDS = 3  # least-squares fits of an arc's circle, each to the ink around the last
ARC_MIN_SPAN = 5  # degrees an arc keeps at least when its ends are drawn back by the pen's round caps
MARK_REACH = 1.5  # tolerances from an arc's measured centre within which its centre mark is looked for


def span_degrees(start: float, end: float) -> np.ndarray:
    """(360,) bool: the whole degrees an arc drawn counter-clockwise from start to end covers."""
    degrees = np.arange(360) + 0.5
    return ((degrees - start) % 360) < ((end - start) % 360)


def close_gaps(on: np.ndarray, max_gap: int) -> np.ndarray:
    """Circular 1-D closing: off-runs of at most max_gap between on-runs become on."""
    if on.all() or not on.any():
        return on.copy()
    out = on.copy()
    n = len(on)
    start = int(np.argmax(on & ~np.roll(on, 1)))  # the first degree of some run
    gap = 0
    for k in range(1, n + 1):
        i = (start + k) % n
        if on[i]:
            if 0 < gap <= max_gap:
                for j in range(1, gap + 1):
                    out[(i - j) % n] = True
            gap = 0
        else:
            gap += 1
    return out


def runs(on: np.ndarray) -> list[tuple[int, int]]:
    """Circular runs of True as (first degree, length); [] when none, [(0, 360)] when all."""
    n = len(on)
    if on.all():
        return [(0, n)]
    found = []
    for i in range(n):
        if on[i] and not on[i - 1]:
            length = 1
            while on[(i + length) % n] and length < n:
                length += 1
            found.append((i, length))
    return found


def _degrees_by_radius(cols: np.ndarray, rows: np.ndarray, col: float, row: float, radii: np.ndarray,
                       band: int) -> np.ndarray:
    """(len(radii), 360) bool: which whole degrees around (col, row) have an ink pixel at each radius.

    `cols`, `rows`: the ink pixels; `radii`: consecutive whole-pixel radii; `band`: pixels of slack
    on each side of a radius (a line's width, a hand's wobble).
    """
    dx, dy = cols - col, row - rows  # y up on the sheet, down in the image
    distance = np.hypot(dx, dy)
    index = np.rint(distance).astype(np.int64) - int(radii[0])
    keep = (index >= -band) & (index < len(radii) + band)
    degree = (np.floor(np.degrees(np.arctan2(dy[keep], dx[keep]))).astype(np.int64)) % 360
    found = np.zeros((len(radii) + 2 * band, 360), bool)
    found[index[keep] + band, degree] = True
    # a radius sees the ink within `band` pixels of it
    return np.stack([found[i:i + 2 * band + 1].any(axis=0) for i in range(len(radii))])


def _fit_circle(ink: np.ndarray, col: float, row: float, radius_px: float, tolerance_px: float,
                predicted: np.ndarray, band: int, reach_share: float = 1.0
                ) -> tuple[float, float, float, np.ndarray] | None:
    """The circle through the most ink pixels of the `predicted` degrees (within a pixel of it), its
    centre within `reach_share` tolerances of (col, row) and its radius within the tolerance of radius_px.

    -> (centre col, centre row, radius in pixels, (360,) which degrees have ink on it), or None when
    there is no ink near. One histogram of distances per centre gives every radius at once; centres are
    searched on a coarse grid, then pixel by pixel around the best.
    """
    reach = max(1, int(round(reach_share * tolerance_px)))
    radii = np.arange(max(2, int(radius_px - tolerance_px)), int(radius_px + tolerance_px) + 1)
    cols, rows = _ink_pixels_near(ink, col, row, int(radii[-1] + reach + band + 2))
    if len(rows) == 0:
        return None
    best = (-1, 0.0, 0, 0, radius_px)  # (pixels, -how far from the model's circle, dc, dr, radius)
    bins = int(2 * radii[-1]) + 4

    def fit(centres):
        nonlocal best
        if not centres:
            return
        centres = np.array(centres, np.float64)  # (C, 2) offsets of the centre, all scored at once
        dx = cols[None, :] - (col + centres[:, :1])  # (C, N); y up on the sheet, down in the image
        dy = (row + centres[:, 1:]) - rows[None, :]
        in_span = predicted[np.floor(np.degrees(np.arctan2(dy, dx))).astype(np.int64) % 360]
        halves = np.minimum(np.rint(2 * np.hypot(dx, dy)).astype(np.int64), bins - 1)  # half-pixel bins
        flat = (np.arange(len(centres))[:, None] * bins + halves)[in_span]
        counts = np.bincount(flat, minlength=len(centres) * bins).reshape(len(centres), bins)
        total = np.cumsum(counts, axis=1)
        total = np.concatenate([np.zeros((len(centres), 3), np.int64), total, total[:, -1:], total[:, -1:]], axis=1)
        near = total[:, 5:] - total[:, :-5]  # (C, bins): within a pixel of each radius (5 half-pixel bins)
        candidates = np.arange(2 * radii[0], min(2 * radii[-1] + 1, bins))
        score = near[:, candidates] - 1e-3 * np.abs(candidates / 2 - radius_px)
        for c, (dc, dr) in enumerate(centres):
            k = candidates[int(np.argmax(score[c]))]
            key = (int(near[c, k]), -float(dc * dc + dr * dr + (k / 2 - radius_px) ** 2), dc, dr, k / 2)
            if key[:2] > best[:2]:
                best = key

    step = max(1, reach // 3)  # a coarse grid, then every pixel around its best: 6x fewer centres than all
    fit([(dc, dr) for dc in range(-reach, reach + 1, step) for dr in range(-reach, reach + 1, step)])
    c0, r0 = best[2], best[3]
    fit([(c0 + i, r0 + j) for i in range(1 - step, step) for j in range(1 - step, step) if i or j])
    _, _, dc, dr, radius = best
    along = _degrees_by_radius(cols, rows, col + dc, row + dr, np.array([int(round(radius))]), band)[0]
    return col + dc, row + dr, float(radius), along


def _max_gap(radius_px: float) -> int:
    """The gap in degrees closed along a circle: MAX_GAP_DEGREES, or two pixels' worth on a small
    circle (a one-pixel stroke of radius 15 px leaves every fourth degree without a pixel)."""
    return max(MAX_GAP_DEGREES, int(np.ceil(2 * 360 / (2 * np.pi * max(radius_px, 1.0)))))


def _crop_around(ink: np.ndarray, col: float, row: float, reach: int) -> tuple[np.ndarray, int, int]:
    """The ink within `reach` pixels (a square) of (col, row), and where the crop's top and left lie."""
    top, left = max(0, int(row) - reach), max(0, int(col) - reach)
    return ink[top:int(row) + reach + 1, left:int(col) + reach + 1], top, left


def _ink_pixels_near(ink: np.ndarray, col: float, row: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """(cols, rows) of the ink pixels within `reach` pixels (a square) of (col, row)."""
    crop, top, left = _crop_around(ink, col, row, reach)
    rows, cols = np.nonzero(crop)
    return cols + left, rows + top


def _run_degrees(run: tuple[int, int]) -> np.ndarray:
    """(360,) bool: the whole degrees of a run of ink (first degree, length) round a circle."""
    return ((np.arange(360) - run[0]) % 360) < run[1]


def _near_stroke(cols: np.ndarray, rows: np.ndarray, col: float, row: float, radius: float, on: np.ndarray,
                 reach: float) -> np.ndarray:
    """Which of the ink pixels (cols, rows) lie within `reach` pixels of the circle, in its degrees `on`."""
    dx, dy = cols - col, row - rows  # y up on the sheet, down in the image
    degree = np.floor(np.degrees(np.arctan2(dy, dx))).astype(np.int64) % 360
    return (np.abs(np.hypot(dx, dy) - radius) <= reach) & on[degree]


def _inked_degrees(ink: np.ndarray, col: float, row: float, radius: float, band: int) -> np.ndarray:
    """(360,) bool: which degrees of the circle (pixels) have ink within `band` of it."""
    cols, rows = _ink_pixels_near(ink, col, row, int(radius + 2 * band + 2))
    return _degrees_by_radius(cols, rows, col, row, np.array([int(round(radius))]), band)[0]


def _soft_circle_fit(x: np.ndarray, y: np.ndarray, radius: float, steps: int = 30) -> tuple[float, float, float]:
    """The circle (centre x, centre y, radius) minimising the soft-L1 loss of the points' distances to
    it (each distance d counts as 2 (sqrt(1 + d^2) - 1): squared near the circle, linear far off), by
    Gauss-Newton on reweighted least squares from the circle of `radius` round the origin. Three
    parameters: a few small numpy solves, a twentieth of the time SciPy's general `least_squares` takes."""
    centre_x, centre_y = 0.0, 0.0
    for _ in range(steps):
        dx, dy = x - centre_x, y - centre_y
        distance = np.maximum(np.hypot(dx, dy), 1e-9)
        residual = distance - radius
        weight = 1.0 / np.sqrt(1.0 + residual * residual)  # the soft-L1 loss as reweighted squares
        jacobian = np.stack([-dx / distance, -dy / distance, -np.ones_like(distance)], axis=1)  # (N, 3)
        weighted = jacobian * weight[:, None]
        step = np.linalg.lstsq(weighted.T @ jacobian, -(weighted.T @ residual), rcond=None)[0]
        centre_x, centre_y, radius = centre_x + step[0], centre_y + step[1], radius + step[2]
        if np.abs(step).max() < 1e-4:
            break
    return float(centre_x), float(centre_y), float(radius)


def _least_squares_circle(ink: np.ndarray, col: float, row: float, radius: float, on: np.ndarray,
                          reach: float, rounds: int = 1) -> tuple[float, float, float] | None:
    """The circle (centre col, row and radius, in pixels) nearest the ink within `reach` pixels of the
    given one (a stroke's half width and some slack), in its degrees `on` (360,): sub-pixel, and set by
    every pixel of the stroke rather than by the fit's grid. With more `rounds`, the pixels are taken
    again around each round's circle (a circle found far off sees only the edge of the stroke at
    first). None when too few pixels are found.

    The distances to the circle are minimised (the algebraic x^2 + y^2 form would let a thick stroke
    on a short arc trade the centre against the radius), with a soft loss so that an arrowhead or a
    crossing line touching the stroke pulls it little.
    """
    cols, rows = _ink_pixels_near(ink, col, row, int(radius + 2 * reach + 2))
    circle = None
    for _ in range(rounds):
        keep = _near_stroke(cols, rows, col, row, radius, on, reach)
        if keep.sum() < 12:
            return circle
        x, y = (cols[keep] - col).astype(np.float64), (row - rows[keep]).astype(np.float64)
        a, b, fitted = _soft_circle_fit(x, y, radius)
        col, row, radius = col + a, row - b, fitted
        circle = (col, row, radius)
    return circle


def _stroke_half_width(ink: np.ndarray, col: float, row: float, radius: float, first: int, length: int,
                       band: int) -> float:
    """Pixels from the middle of a circle's stroke to its edge, over the degrees [first, first + length):
    the median over degrees of the largest distance to paper within `band` pixels of the circle (a
    distance transform, less the half pixel by which it reaches past the stroke's edge), so that a
    circle a pixel or two off the stroke's middle measures it as well. 0 when the circle finds no ink."""
    crop, top, left = _crop_around(ink, col, row, int(radius) + 16)  # the whole stroke, and paper beyond it
    distance = cv2.distanceTransform(crop.astype(np.uint8), cv2.DIST_L2, 5)
    angles = np.radians(first + 0.5 + np.arange(length))[:, None]  # (L, 1) by radii (1, 2 band + 1)
    radii = radius + np.arange(-band, band + 1)[None, :]
    c = np.rint(col + radii * np.cos(angles)).astype(np.int64) - left
    r = np.rint(row - radii * np.sin(angles)).astype(np.int64) - top
    inside = (c >= 0) & (c < crop.shape[1]) & (r >= 0) & (r < crop.shape[0])
    values = distance[np.clip(r, 0, crop.shape[0] - 1), np.clip(c, 0, crop.shape[1] - 1)]
    values = np.where(inside, values, 0).max(axis=1)  # (L,)
    values = values[values > 0]
    return max(0.0, float(np.median(values)) - 0.5) if len(values) else 0.0


def _ink_span_near(ink: np.ndarray, centre: tuple[float, float], radius_px: float, tolerance_px: float,
                   predicted: np.ndarray, band: int) -> np.ndarray | None:
    """(360,) the degrees of the run of ink nearest the model's span on the circle that carries most ink
    near the model's, for an arc whose span has little ink: the model saw the circle but not which
    part of it is drawn. None when that circle shows no run of ARC_MIN_RUN degrees."""
    fitted = _fit_circle(ink, *centre, radius_px, tolerance_px, np.ones(360, bool), band, ARC_CENTRE_REACH)
    if fitted is None:
        return None
    found = [run for run in runs(close_gaps(fitted[3], _max_gap(fitted[2]))) if ARC_MIN_RUN <= run[1] < 358]
    if not found:
        return None
    span = np.flatnonzero(predicted)

    def distance(run: tuple[int, int]) -> float:
        degrees = (run[0] + np.arange(run[1])) % 360
        gaps = np.abs(degrees[:, None] - span[None, :])
        return float(np.minimum(gaps, 360 - gaps).min())

    first, length = min(found, key=distance)
    return _run_degrees((first, length))


def _centre_mark(ink: np.ndarray, col: float, row: float, reach: int, band: int) -> tuple[float, float] | None:
    """The middle (col, row) of the centre mark nearest (col, row) within `reach` pixels: a small
    upright cross of ink standing alone (two strokes of about equal length crossing at their middles),
    as drafters mark an arc's or a circle's centre. None when there is none."""
    crop, top, left = _crop_around(ink, col, row, 2 * reach)  # the whole of a mark whose middle is in reach
    count, labels, stats, _ = cv2.connectedComponentsWithStats(crop.astype(np.uint8), connectivity=8)
    best = None
    for k in range(1, count):
        x, y, w, h, _ = stats[k]
        if min(w, h) < 4 * band + 3 or abs(w - h) > 0.35 * max(w, h) + 2 * band or \
                x == 0 or y == 0 or x + w == crop.shape[1] or y + h == crop.shape[0]:
            continue
        rows, cols = np.nonzero(labels[y:y + h, x:x + w] == k)
        middle_col, middle_row = np.median(cols), np.median(rows)
        across = np.abs(rows - middle_row) <= band  # the horizontal stroke's pixels
        upright = np.abs(cols - middle_col) <= band
        if (across | upright).mean() < 0.9 or len(np.unique(cols[across])) < 0.8 * w or \
                len(np.unique(rows[upright])) < 0.8 * h or abs(middle_col - (w - 1) / 2) > band + 1 or \
                abs(middle_row - (h - 1) / 2) > band + 1:
            continue
        centre = (left + x + middle_col, top + y + middle_row)
        distance = float(np.hypot(centre[0] - col, centre[1] - row))
        if distance <= reach and (best is None or distance < best[0]):
            best = (distance, centre)
    return None if best is None else best[1]


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
    settled = _least_squares_circle(ink, col, row, radius, _run_degrees(run), max(band, half_width) + 1,
                                    ARC_SETTLING_ROUNDS)
    if not settled or np.hypot(settled[0] - col, settled[1] - row) > tolerance_px or \
            min(abs(settled[2] - radius), abs(settled[2] - read_radius)) > band + 1:
        return None
    return settled, _inked_degrees(ink, *settled, band)


def _marked_arc(ink: np.ndarray, circle: tuple[float, float, float], run: tuple[int, int], band: int,
                half_width: float, tolerance_px: float) -> tuple[tuple[float, float, float], np.ndarray] | None:
    """The circle (col, row, radius; pixels) centred on the centre mark drawn near an arc's `circle`
    (`_centre_mark`), through the middle of the arc's stroke in the degrees of `run`, and (360,) which
    degrees have ink along it; None without a mark, or where that circle's radius is more than the
    tolerance from the arc's (the mark is another's).

    A short arc's ink leaves its centre loose (it slides along the arc's middle as the radius
    changes); a drafter's centre mark pins it."""
    col, row, radius = circle
    mark = _centre_mark(ink, col, row, max(2, int(MARK_REACH * tolerance_px)), band)
    if mark is None:
        return None
    reach = max(band, half_width) + 1
    cols, rows = _ink_pixels_near(ink, col, row, int(radius + 2 * reach + 2))
    keep = _near_stroke(cols, rows, col, row, radius, _run_degrees(run), reach)
    if keep.sum() < 12:
        return None
    new_radius = float(np.median(np.hypot(cols[keep] - mark[0], mark[1] - rows[keep])))
    if abs(new_radius - radius) > tolerance_px:
        return None
    return (mark[0], mark[1], new_radius), _inked_degrees(ink, mark[0], mark[1], new_radius, band)


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
    fitted = _fit_circle(ink, *centre, radius_px, tolerance_mm * scale, predicted, band, ARC_CENTRE_REACH)
    if fitted is None:
        return arc, {}
    col, row, radius, along = fitted
    if (along & predicted).sum() < MIN_OVERLAP * predicted.sum():
        predicted = _ink_span_near(ink, centre, radius_px, tolerance_mm * scale, predicted, band)
        if predicted is None:
            return arc, {}  # no circle of ink where the model saw the arc
        fitted = _fit_circle(ink, *centre, radius_px, tolerance_mm * scale, predicted, band, ARC_CENTRE_REACH)
        if fitted is None:
            return arc, {}
        col, row, radius, along = fitted
    measured = {"radius": radius / scale, "mm_per_px": 1 / scale}
    candidates = runs(close_gaps(along, _max_gap(radius)))
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
        span = predicted | _run_degrees((first, length))
        # ... from the circle found so far: a model's centre off by about the tolerance leaves the
        # first fit at the edge of its search.
        fitted = _fit_circle(ink, col, row, radius, tolerance_mm * scale, span, band)
        found = fitted and runs(close_gaps(fitted[3], _max_gap(fitted[2])))
        if not found or found == [(0, 360)] or overlap(max(found, key=overlap)) < MIN_OVERLAP * predicted.sum():
            break
        col, row, radius, along = fitted
        first, length = max(found, key=overlap)
        measured["radius"] = radius / scale
    half_width = _stroke_half_width(ink, col, row, radius, first, length, band)

    def run_on(circle_and_degrees):
        """A better circle's (circle, its run of ink overlapping the model's span most), or None when
        no run along it overlaps enough."""
        circle, on = circle_and_degrees
        found = [run for run in runs(close_gaps(on, _max_gap(circle[2]))) if run[1] < 358]
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
        half_width = _stroke_half_width(ink, col, row, radius, first, length, band)
    measured["radius"] = radius / scale
    # A pen's round end reaches half the stroke's width past where the arc ends.
    cap = np.degrees(half_width / radius)
    cap = cap if length - 2 * cap > ARC_MIN_SPAN else 0.0
    x, y = frame.to_mm(col, row)
    start, end = round((first + cap) % 360, 1) % 360, round((first + length - cap) % 360, 1) % 360
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
    fitted = _fit_circle(ink, *frame.to_px(circle.x, circle.y), circle.radius * scale, tolerance_mm * scale,
                         np.ones(360, bool), band_width(ink))
    return (0.0 if fitted is None else float(close_gaps(fitted[3], _max_gap(fitted[2])).mean())), fitted


def refine_circle(circle: Circle, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> tuple[Circle, dict]:
    """The circle's centre re-measured on the ink (its radius stays the one read from the `Ø`
    annotation), and {"radius": the ink's radius in mm} when at least CIRCLE_INKED of its round is."""
    inked, fitted = _inked_circle(circle, ink, frame, tolerance_mm)
    if fitted is None or inked < CIRCLE_INKED:
        return circle, {}
    band, scale = band_width(ink), frame.px_per_mm
    col, row, radius, along = fitted
    settled = _least_squares_circle(ink, col, row, radius, along, band + 1)
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
