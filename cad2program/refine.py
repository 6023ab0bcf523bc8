"""Refining what the model read against the ink of the full-resolution image.

The model sees the drawing at its input size (256 px in the `cpu` config): enough to find and read
every primitive, too coarse for the contract's 5-degree tolerance on a small arc's angles (at 256 px a
16 mm arc on a 330 mm sheet is 12 px across, and 5 degrees of it about one pixel). The user's image
usually has several times more pixels. This module keeps what the model decided (which primitives,
their types, the sizes it read from the annotations) and re-measures where an arc's ink starts and
ends, at the image's own resolution. It knows nothing about the model.

How an arc is refined:
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

from cad2program.program import Arc, Circle, Line, Polyline, Primitive, Rectangle, Sheet
from cad2program.scoring import pair_error, tolerance

MIN_OVERLAP = 0.4  # share of the model's span a run of ink must cover to replace it
MAX_GAP_DEGREES = 4  # gaps of ink this short along an arc are closed
CENTRE_SEARCH_SHARE = 1.0  # segments are searched across within this share of the matching tolerance
ARC_REFITS = 1  # fits of an arc's circle again, to the span of its ink
ARC_CENTRE_REACH = 2.0  # arc centres are searched this many tolerances from the model's (held-out F1 up)
ARC_MIN_RUN = 15  # degrees of ink that an arc whose span the model misplaced must show
CIRCLE_INKED = 0.7  # share of its round a circle's ink must cover to be measured (and kept: `recognizer`)
ARC_SETTLING_ROUNDS = 3  # least-squares fits of an arc's circle, each to the ink around the last
ARC_MIN_SPAN = 5  # degrees an arc keeps at least when its ends are drawn back by the pen's round caps
MARK_REACH = 1.5  # tolerances from an arc's measured centre within which its centre mark is looked for
FAR_EDGE_TOLERANCES = 4  # a rectangle's edge with no stroke near is searched this many tolerances out
FAR_EDGE_COVERAGE = 0.8  # ... for a stroke along this share of it
WORKING_SIDE = 800  # larger images are measured at this longer side (over 3x the model's 256 px)


def grey(image: np.ndarray) -> np.ndarray:
    """Any image array (grey, RGB, RGBA; uint8) -> grey uint8."""
    if image.ndim == 3:
        code = cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY
        image = cv2.cvtColor(image, code) if image.shape[2] in (3, 4) else image[:, :, 0]
    return image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)


def paper_around(image: np.ndarray) -> np.ndarray:
    """Grey uint8 -> the paper's shade around each pixel: a median over several line widths."""
    return cv2.medianBlur(image, min(255, max(15, (max(image.shape) // 25) | 1)))


def ink_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: ink, i.e. pixels clearly darker than the paper around them.

    A pixel is ink when it is darker than the local background (a wide median) by a margin that
    adapts to the image's contrast; the local background makes uneven light (photos) and paper
    tint (scans) harmless.
    """
    image = grey(image)
    darker = paper_around(image).astype(np.int16) - image.astype(np.int16)
    contrast = np.percentile(darker, 99.5)
    return darker > max(25, 0.35 * contrast)


@dataclasses.dataclass(frozen=True)
class Frame:
    """Sheet millimetres (y up) <-> image pixels (y down); the image shows exactly the sheet."""

    sheet: Sheet
    width_px: int
    height_px: int

    @property
    def px_per_mm(self) -> float:
        return (self.width_px / self.sheet.width + self.height_px / self.sheet.height) / 2

    def to_px(self, x: float, y: float) -> tuple[float, float]:
        return x * self.width_px / self.sheet.width, (self.sheet.height - y) * self.height_px / self.sheet.height

    def to_mm(self, col: float, row: float) -> tuple[float, float]:
        return col * self.sheet.width / self.width_px, self.sheet.height - row * self.sheet.height / self.height_px


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
    band = _band(ink)
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


def remeasure_arcs(image: np.ndarray, sheet: Sheet, measured: Sequence[Primitive], read: Sequence[Primitive],
                   tolerance_mm: float | None = None) -> list[Primitive]:
    """`read` (the `measured` primitives, some sizes read again) with each arc whose radius changed
    measured again on the ink with its new radius: among the circles that a short arc's stroke fits
    about equally well, the radius read picks the one drawn (`refine_arc`)."""
    changed = [k for k, (old, new) in enumerate(zip(measured, read)) if isinstance(new, Arc) and new.radius != old.radius]
    if not changed:
        return list(read)
    ink, frame = working_ink(image, sheet)
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
                         np.ones(360, bool), _band(ink))
    return (0.0 if fitted is None else float(close_gaps(fitted[3], _max_gap(fitted[2])).mean())), fitted


def refine_circle(circle: Circle, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> tuple[Circle, dict]:
    """The circle's centre re-measured on the ink (its radius stays the one read from the `Ø`
    annotation), and {"radius": the ink's radius in mm} when at least CIRCLE_INKED of its round is."""
    inked, fitted = _inked_circle(circle, ink, frame, tolerance_mm)
    if fitted is None or inked < CIRCLE_INKED:
        return circle, {}
    band, scale = _band(ink), frame.px_per_mm
    col, row, radius, along = fitted
    settled = _least_squares_circle(ink, col, row, radius, along, band + 1)
    radius = settled[2] if settled and abs(settled[2] - radius) <= band + 1 else radius
    x, y = frame.to_mm(col, row)
    refined = dataclasses.replace(circle, x=round(x, 1), y=round(y, 1))
    return (refined if not refined.problems(frame.sheet) else circle), {"radius": radius / scale,
                                                                         "mm_per_px": 1 / scale}


def inked_rounds(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive]) -> list[float | None]:
    """For each circle, the share of its round that is inked (on the circle carrying most ink within
    the matching tolerance of it); None for the other primitives."""
    if not any(isinstance(p, Circle) for p in primitives):
        return [None] * len(primitives)
    ink, frame = working_ink(image, sheet)
    tolerance_mm = tolerance(sheet)
    return [_inked_circle(p, ink, frame, tolerance_mm)[0] if isinstance(p, Circle) else None for p in primitives]


def _band(ink: np.ndarray) -> int:
    """Pixels of slack across a stroke: about a line's width, and a hand's wobble."""
    return max(1, int(round(0.003 * max(ink.shape))))


def _ink_at(ink: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Ink at points (..., 2) given as (col, row); outside the image is paper."""
    c, r = np.rint(points[..., 0]).astype(np.int64), np.rint(points[..., 1]).astype(np.int64)
    inside = (c >= 0) & (c < ink.shape[1]) & (r >= 0) & (r < ink.shape[0])
    return ink[np.clip(r, 0, ink.shape[0] - 1), np.clip(c, 0, ink.shape[1] - 1)] & inside


def _ink_along(ink: np.ndarray, start: np.ndarray, direction: np.ndarray, normal: np.ndarray,
               positions: np.ndarray, band: int) -> np.ndarray:
    """(len(positions),) bool: ink within `band` pixels across the line start + t * direction at each t."""
    across = np.arange(-band, band + 1)
    points = start[None, None, :] + positions[:, None, None] * direction + across[None, :, None] * normal
    hit = _ink_at(ink, points)
    return hit.any(axis=1)


def _segment_coverage(ink: np.ndarray, p1: np.ndarray, p2: np.ndarray, normal: np.ndarray,
                      offsets1: np.ndarray, offsets2: np.ndarray, band: int) -> np.ndarray:
    """(len(offsets1), len(offsets2)): the share of each candidate segment (ends moved across by the
    offsets) with ink within `band` across it, sampled a pixel apart, all candidates at once."""
    share = np.linspace(0.0, 1.0, int(np.hypot(*(p2 - p1))) + 1)  # (L,) where along the segment
    across = offsets1[:, None, None] * (1 - share) + offsets2[None, :, None] * share  # (O1, O2, L)
    across = across[..., None] + np.arange(-band, band + 1)  # (O1, O2, L, 2 band + 1)
    points = (p1 + share[:, None] * (p2 - p1))[None, None, :, None, :] + across[..., None] * normal
    hit = _ink_at(ink, points)
    return hit.any(axis=-1).mean(axis=-1)


def _fit_segment(ink: np.ndarray, p1: np.ndarray, p2: np.ndarray, reach: int, band: int
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """The segment near p1-p2 that lies on the most ink: each end moved across by up to `reach` pixels.

    Candidates are compared on a grid of offsets `step` apart, then every pixel around the best
    (across the model's direction: the candidates differ from it by a few degrees at most). None
    when even the best holds too little ink (nothing drawn there).
    """
    direction = (p2 - p1) / float(np.hypot(*(p2 - p1)))
    normal = np.array([-direction[1], direction[0]])
    step = max(1, reach // 4)
    coarse = np.arange(-reach, reach + 1, step, dtype=np.float64)
    coverage = _segment_coverage(ink, p1, p2, normal, coarse, coarse, band)
    if coverage.max() < MIN_OVERLAP:
        return None
    i, j = np.unravel_index(np.argmax(coverage), coverage.shape)
    fine1, fine2 = (coarse[k] + np.arange(-step, step + 1, dtype=np.float64) for k in (i, j))
    coverage = _segment_coverage(ink, p1, p2, normal, fine1, fine2, band)
    # A stroke a few pixels wide is covered as well by several neighbouring segments: take their middle.
    i, j = np.nonzero(coverage >= 0.95 * coverage.max())
    return p1 + fine1[i].mean() * normal, p2 + fine2[j].mean() * normal


def _ink_run_ends(ink: np.ndarray, a: np.ndarray, b: np.ndarray, extend: int, band: int
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the ink along the line through a, b starts and ends: the run (searched up to `extend`
    pixels beyond a and b, gaps of a few pixels closed) that covers a-b most. None when no run
    covers enough of it."""
    length = float(np.hypot(*(b - a)))
    seg = (b - a) / length
    positions = np.arange(-extend, length + extend + 0.5)
    along = _close_linear_gaps(_ink_along(ink, a, seg, np.array([-seg[1], seg[0]]), positions, band),
                               max(2, band * 2))
    inside = (positions >= 0) & (positions <= length)
    best_run, best_overlap = None, 0
    for first, count in _linear_runs(along):
        overlap = int(inside[first:first + count].sum())
        if overlap > best_overlap:
            best_run, best_overlap = (first, count), overlap
    if best_run is None or best_overlap < MIN_OVERLAP * inside.sum():
        return None
    first, count = best_run
    return a + positions[first] * seg, a + positions[first + count - 1] * seg


def _search_sizes(ink: np.ndarray, frame: Frame, tolerance_mm: float) -> tuple[int, int, int]:
    """(band, reach, extend) in pixels: a line's width across, how far across a segment is searched
    (half the matching tolerance), how far beyond its ends (three tolerances: the model's ends can be
    that far out, and the ink's own end stops the search anyway)."""
    tolerance_px = tolerance_mm * frame.px_per_mm
    return (_band(ink), max(1, int(round(CENTRE_SEARCH_SHARE * tolerance_px))),
            int(np.ceil(3 * tolerance_px)) + 2)


def refine_line(line: Line, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> Line:
    """The line with its end points re-measured on the ink.

    First the line itself (`_fit_segment`): each end point may move across the line by up to half the
    matching tolerance, and the pair whose segment holds the most ink wins. Then its ends
    (`_ink_run_ends`). When too little of the model's segment is ink, the line is kept as it was.
    """
    p1, p2 = np.array(frame.to_px(line.x1, line.y1)), np.array(frame.to_px(line.x2, line.y2))
    if np.hypot(*(p2 - p1)) < 4:
        return line
    band, reach, extend = _search_sizes(ink, frame, tolerance_mm)
    fitted = _fit_segment(ink, p1, p2, reach, band)
    if fitted is None:  # no stroke near: the nearest parallel one along most of it, a few tolerances out
        direction = (p2 - p1) / float(np.hypot(*(p2 - p1)))
        normal = np.array([-direction[1], direction[0]])
        offset = _best_offset(ink, p1, direction, normal, float(np.hypot(*(p2 - p1))), 0, band,
                              int(round(FAR_EDGE_TOLERANCES * tolerance_mm * frame.px_per_mm)))
        fitted = offset and _fit_segment(ink, p1 + offset * normal, p2 + offset * normal, reach, band)
    ends = fitted and _ink_run_ends(ink, *fitted, extend, band)
    if not ends:
        return line
    (x1, y1), (x2, y2) = frame.to_mm(*ends[0]), frame.to_mm(*ends[1])
    refined = Line(round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))
    return refined if not refined.problems(frame.sheet) else line


PARALLEL_SINE = 0.2  # lines under about 12 degrees apart are taken as parallel: their crossing is not trusted


def _intersection(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray,
                  min_sine: float = PARALLEL_SINE) -> np.ndarray | None:
    """Where the lines through a1-b1 and a2-b2 cross; None when they are nearly parallel (the sine of
    the angle between them under `min_sine`)."""
    d1, d2 = b1 - a1, b2 - a2
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(cross) < min_sine * np.hypot(*d1) * np.hypot(*d2):
        return None
    t = ((a2 - a1)[0] * d2[1] - (a2 - a1)[1] * d2[0]) / cross
    return a1 + t * d1


NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))  # 4-neighbours first
MIN_SIDE = 1.0  # polyline sides shorter than the matching tolerance are corner artefacts, not drawn ones
STROKE_SHARE = 0.25  # share of the model's polyline a stroke must lie along to be traced as it
TRACE_COVERAGE = 0.97  # share of a stroke's skeleton one walk must cover: more is a branch (another stroke)
CUT_CORNER_SIDE = 3.0  # tolerances: a side this short may be a sharp corner the skeleton cut (`_with_sharp_corners`)
SHARP_SINE = 0.05  # sides turning back on each other are trusted to cross down to about 3 degrees apart
SPUR_REACH = 2.0  # tolerances from a corner within which the skeleton's spurs are the corner's, not a branch


def _stroke_component(ink: np.ndarray, points: np.ndarray, closed: bool, reach: int) -> np.ndarray | None:
    """(H, W) bool: the connected stroke of ink that lies most along the polyline through `points`
    (within `reach` pixels of it); None when none covers most of that path."""
    near = np.zeros(ink.shape, np.uint8)
    cv2.polylines(near, [np.rint(points).astype(np.int32)], closed, 1, 2 * reach + 1)
    count, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    hits = np.bincount(labels[(near > 0) & ink], minlength=count)
    hits[0] = 0
    best = int(np.argmax(hits))
    if hits[best] == 0:
        return None
    stroke = labels == best
    on_path = np.zeros(ink.shape, np.uint8)
    cv2.polylines(on_path, [np.rint(points).astype(np.int32)], closed, 1, 1)
    along = cv2.dilate(stroke.astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8))
    return stroke if (along[on_path > 0] > 0).mean() >= STROKE_SHARE else None


def _neighbours(skeleton: np.ndarray, pixel: tuple[int, int]) -> list[tuple[int, int]]:
    """The skeleton's pixels around `pixel` (8-neighbourhood), 4-neighbours first."""
    out = []
    for dr, dc in NEIGHBOURS:
        q = (pixel[0] + dr, pixel[1] + dc)
        if 0 <= q[0] < skeleton.shape[0] and 0 <= q[1] < skeleton.shape[1] and skeleton[q]:
            out.append(q)
    return out


def _without_spurs(skeleton: np.ndarray, spur: int) -> np.ndarray:
    """The skeleton without the short branches (at most `spur` pixels, from an end to a fork) that a
    thick stroke's sharp corner leaves in it."""
    skeleton = skeleton.copy()
    for end in map(tuple, np.argwhere(skeleton)):
        if len(_neighbours(skeleton, end)) != 1:
            continue
        branch, at = [end], end
        while len(branch) <= spur:
            ahead = [q for q in _neighbours(skeleton, at) if q not in branch]
            if len(ahead) != 1 or len(_neighbours(skeleton, ahead[0])) > 2:
                break
            at = ahead[0]
            branch.append(at)
        forks = len(ahead) > 1 or (len(ahead) == 1 and len(_neighbours(skeleton, ahead[0])) > 2)
        if forks and len(branch) <= spur:
            skeleton[tuple(np.array(branch).T)] = False
    return skeleton


def _skeleton_graph(skeleton: np.ndarray):
    """The skeleton's pixels (N, 2) as (row, col) and their 8-neighbourhood as a graph (a SciPy sparse
    matrix) whose edges weigh the step's length (1 or the square root of 2)."""
    from scipy.sparse import coo_matrix

    pixels = np.argwhere(skeleton)
    index = np.full(skeleton.shape, -1, np.int64)
    index[tuple(pixels.T)] = np.arange(len(pixels))
    padded = np.pad(index, 1, constant_values=-1)
    rows, cols, weights = [], [], []
    for dr, dc in NEIGHBOURS:
        other = padded[1 + dr:1 + dr + skeleton.shape[0], 1 + dc:1 + dc + skeleton.shape[1]][tuple(pixels.T)]
        keep = other >= 0
        rows.append(np.flatnonzero(keep))
        cols.append(other[keep])
        weights.append(np.full(int(keep.sum()), np.hypot(dr, dc)))
    rows, cols, weights = map(np.concatenate, (rows, cols, weights))
    return pixels, coo_matrix((weights, (rows, cols)), shape=(len(pixels),) * 2).tocsr()


def _shortest_path(graph, source: int, target: int) -> list[int] | None:
    """Nodes from source to target along the graph's shortest path; None when they are not connected."""
    from scipy.sparse.csgraph import dijkstra

    _, previous = dijkstra(graph, indices=source, return_predecessors=True)
    if target != source and previous[target] < 0:
        return None
    path = [target]
    while path[-1] != source:
        path.append(int(previous[path[-1]]))
    return path[::-1]


def _cycle_core(graph) -> np.ndarray:
    """(N,) bool: the nodes left when every end (a node of one neighbour or none) is pruned, again and
    again: the skeleton's loops without the spurs and strokes that hang off them."""
    degree = np.asarray((graph > 0).sum(axis=1)).ravel()
    alive = np.ones(len(degree), bool)
    ends = np.flatnonzero(degree <= 1)
    while len(ends):
        alive[ends] = False
        for node in ends:
            for other in graph.indices[graph.indptr[node]:graph.indptr[node + 1]]:
                degree[other] -= 1
        ends = np.flatnonzero(alive & (degree <= 1))
    return alive


def _walk_round(graph, core: np.ndarray) -> list[int] | None:
    """Nodes once round the loop in `core`, in order: from a node on a plain stretch of it (two
    neighbours, not next to each other), the shortest way from one neighbour to the other that does
    not pass through it. None when the core holds no loop."""
    nodes = np.flatnonzero(core)
    if len(nodes) < 8:
        return None
    inner = graph[core][:, core].tocsr()
    linked = inner > 0
    for start in range(len(nodes)):
        neighbours = inner.indices[inner.indptr[start]:inner.indptr[start + 1]]
        if len(neighbours) == 2 and not linked[neighbours[0], neighbours[1]]:
            break
    else:
        return None
    keep = np.ones(len(nodes), bool)
    keep[start] = False
    others = np.flatnonzero(keep)
    renumber = np.cumsum(keep) - 1
    way = _shortest_path(inner[keep][:, keep], int(renumber[neighbours[0]]), int(renumber[neighbours[1]]))
    return None if way is None else [int(nodes[start])] + [int(nodes[others[k]]) for k in way]


def _ordered_skeleton(skeleton: np.ndarray) -> tuple[np.ndarray, bool] | None:
    """The skeleton's pixels (row, col) in order along the stroke and whether it closes: a closed one
    goes round its loop, an open one runs between its two ends. Shortest ways, so that the clumps of
    pixels a sharp corner leaves are crossed, not followed into. None when an open skeleton has more
    than two ends (it branches)."""
    pixels, graph = _skeleton_graph(skeleton)
    core = _cycle_core(graph)
    if core.sum() >= 8:  # a loop: closed, whatever spurs its sharp corners leave (judged by the caller)
        way = _walk_round(graph, core)
        return None if way is None else (pixels[way], True)
    ends = np.flatnonzero(np.asarray((graph > 0).sum(axis=1)).ravel() == 1)
    if len(ends) != 2:
        return None
    way = _shortest_path(graph, int(ends[0]), int(ends[1]))
    return None if way is None else (pixels[way], False)


def import_deferred() -> None:
    """Imports what measuring imports only when first needed (scikit-image and SciPy's graphs for
    tracing polylines, the outputs package for erasing): about half a second once. A server calls it
    while warming up, so that its first request does not pay it."""
    import cad2program.outputs.scene  # noqa: F401
    import scipy.sparse.csgraph  # noqa: F401
    import skimage.morphology  # noqa: F401


def _skeleton_path(stroke: np.ndarray, spur: int) -> tuple[np.ndarray, bool, np.ndarray, int] | None:
    """A stroke's centre line as ordered (col, row) points, whether it closes on itself, the
    skeleton's pixels (col, row) beside it (spurs and branches: the caller judges them) and the
    skeleton's size; None when the stroke cannot be walked (an open one that branches by more than
    `spur` pixels)."""
    from skimage.morphology import skeletonize  # imported here: only polylines need it (`import_deferred`)

    rows, cols = np.nonzero(stroke)
    r0, c0 = max(rows.min() - 1, 0), max(cols.min() - 1, 0)  # the stroke's box: less to walk over
    skeleton = _without_spurs(skeletonize(stroke[r0:rows.max() + 2, c0:cols.max() + 2]), spur)
    total = int(skeleton.sum())
    if total < 8:
        return None
    ordered = _ordered_skeleton(skeleton)
    if ordered is None:
        return None
    path, closed = ordered
    # Pixels beside the way (a diagonal step's corner, a corner's clump) count as covered; a branch does not.
    walked = np.zeros(skeleton.shape, np.uint8)
    walked[tuple(path.T)] = 1
    beside = skeleton & ~cv2.dilate(walked, np.ones((3, 3), np.uint8)).astype(bool)
    return (path.astype(np.float64)[:, ::-1] + [c0, r0], closed,
            np.argwhere(beside).astype(np.float64)[:, ::-1] + [c0, r0], total)


def _without_short_sides(corners: np.ndarray, closed: bool, shortest: float) -> np.ndarray:
    """Corners with every side shorter than `shortest` merged away: a rounded or blurred corner gives
    Douglas-Peucker two corners close together. The short side's two corners become their middle;
    at an open end, the end corner goes (a hook of the stroke's end, not a side)."""
    corners = list(corners)
    while len(corners) > (3 if closed else 2):
        sides = [(i, (i + 1) % len(corners)) for i in range(len(corners) if closed else len(corners) - 1)]
        length, (i, j) = min((float(np.hypot(*(corners[j] - corners[i]))), (i, j)) for i, j in sides)
        if length >= shortest:
            break
        if not closed and i == 0:
            del corners[0]
        elif not closed and j == len(corners) - 1:
            del corners[j]
        else:
            corners[i] = (corners[i] + corners[j]) / 2
            del corners[j]
    return np.array(corners)


def _straightened(corners: np.ndarray, closed: bool, epsilon: float) -> np.ndarray:
    """Corners without those that lie within `epsilon` of the line through their neighbours (on a
    closed outline Douglas-Peucker keeps where the walk began, corner or not)."""
    corners = list(corners)
    changed = True
    while changed and len(corners) > (3 if closed else 2):
        changed = False
        inner = range(len(corners)) if closed else range(1, len(corners) - 1)
        for i in inner:
            a, b, c = corners[i - 1], corners[i], corners[(i + 1) % len(corners)]
            chord = c - a
            if abs(chord[0] * (b - a)[1] - chord[1] * (b - a)[0]) <= epsilon * np.hypot(*chord):
                del corners[i]
                changed = True
                break
    return np.array(corners)


def _fit_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total least squares: a point on the line through `points` (N, 2) and its unit direction."""
    centre = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centre)
    return centre, vt[0]


def _corner_sine(corners: Sequence[np.ndarray], k: int) -> float:
    """The least sine between the sides that meet at corner k + 1 for their crossing to be trusted:
    nearly parallel sides cross anywhere along a corner that hardly turns, but where the stroke turns
    back on itself (more than 90 degrees) the crossing is the sharp corner's tip."""
    a, b, c = corners[k], corners[(k + 1) % len(corners)], corners[(k + 2) % len(corners)]
    return SHARP_SINE if float(np.dot(b - a, c - b)) < 0 else PARALLEL_SINE


def _on_ink(near: np.ndarray, *corners: np.ndarray) -> bool:
    """Whether the way through the corners (col, row) lies on ink (`near`: `_near_ink`)."""
    return bool(_ink_at(near, _along(np.array(corners))).mean() >= 0.9)


def _with_sharp_corners(corners: list[np.ndarray], lines: list, closed: bool, near: np.ndarray,
                        tolerance_px: float) -> list[np.ndarray]:
    """Corners with the sharp ones the skeleton cut off put back. Where a stroke turns sharply its ink
    fills the corner, and the skeleton crosses it short of the tip: two corners joined by a short side,
    where the stroke turns by more than 90 degrees in all (less, and the skeleton keeps close to the
    tip). When the sides on either side of it cross near it, and the way from one corner to that crossing
    and on to the other lies on ink, the corner was that crossing (a drawn chamfer leaves paper there).
    `lines[k]` is side k's fitted line (corner k to corner k + 1); `near` is `_near_ink`."""
    corners, lines = list(corners), list(lines)
    limit = CUT_CORNER_SIDE * tolerance_px
    changed = True
    while changed and len(corners) > (3 if closed else 2):
        changed = False
        n = len(corners)
        for k in range(n) if closed else range(1, n - 2):  # side k, with a side before and after it
            i, j = k, (k + 1) % n
            if np.hypot(*(corners[j] - corners[i])) > limit:
                continue
            if float(np.dot(corners[i] - corners[i - 1], corners[(j + 1) % n] - corners[j])) >= 0:
                continue  # the stroke turns by under 90 degrees there: its skeleton hardly cuts the corner
            (p, d), (q, e) = lines[k - 1], lines[(k + 1) % len(lines)]
            tip = _intersection(p, p + d, q, q + e, SHARP_SINE)
            if tip is None or max(np.hypot(*(tip - corners[i])), np.hypot(*(tip - corners[j]))) > limit:
                continue
            if not _on_ink(near, corners[i], tip, corners[j]):
                continue
            if j == 0:  # the side that closes the outline: the tip replaces its first corner
                corners[0] = tip
                del corners[i], lines[k]
            else:
                corners[i] = tip
                del corners[j], lines[k]
            changed = True
            break
    return corners


def trace_polyline(polyline: Polyline, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> Polyline | None:
    """The polyline traced on its own stroke of ink: its corners, their number and whether it closes,
    all from the ink; None when the stroke cannot be followed alone (it touches other ink, or the ink
    near the model's polyline is not one stroke).

    The stroke is the connected ink along the model's polyline; its skeleton, walked end to end (or
    round), is simplified (Douglas-Peucker) into corners; each side is then a straight line fitted to
    its middle pixels, each corner the crossing of its two sides, each open end the end of its ink.
    """
    points = np.array([frame.to_px(x, y) for x, y in polyline.points])
    band, reach, _ = _search_sizes(ink, frame, tolerance_mm)
    stroke = _stroke_component(ink, points, polyline.closed, reach)
    traced = stroke is not None and _skeleton_path(stroke, 3 * band + 2)
    if not traced:
        return None
    path, closed, beside, total = traced
    if not closed and np.hypot(*(path[0] - path[-1])) <= 3 * band + 2:
        closed = True  # an outline drawn with a small gap where the pen began and ended
    tolerance_px = tolerance_mm * frame.px_per_mm
    epsilon = float(np.clip(0.25 * tolerance_px, 2.0, 6.0))  # above a hand's wobble, below a 30-degree corner
    corners = cv2.approxPolyDP(path.astype(np.float32)[:, None, :], epsilon, closed)[:, 0, :].astype(np.float64)
    corners = _straightened(_without_short_sides(corners, closed, MIN_SIDE * tolerance_px), closed, epsilon)
    if len(corners) < 2 or (closed and len(corners) < 3):
        return None
    # Where each corner lies on the walk, to fit each side to the pixels between two corners.
    at = [int(np.argmin(np.hypot(*(path - c).T))) for c in corners]
    sides = [(at[i], at[i + 1]) for i in range(len(at) - 1)] + ([(at[-1], at[0])] if closed else [])
    margin = band + 2  # the rounded pixels near a corner belong to neither side
    lines = []
    for a, b in sides:
        piece = path[a:b + 1] if a < b else np.concatenate([path[a:], path[:b + 1]])
        inner = piece[margin:len(piece) - margin] if len(piece) > 2 * margin + 2 else piece
        lines.append(_fit_line(inner))
    near = _near_ink(ink)
    new = [c.copy() for c in corners]
    for k in range(len(sides) if closed else len(sides) - 1):
        (p, d), (q, e) = lines[k], lines[(k + 1) % len(lines)]
        j = (k + 1) % len(corners)
        crossing = _intersection(p, p + d, q, q + e, _corner_sine(corners, k))
        if crossing is None:
            continue
        # A sharp corner's ink fills its tip, and the skeleton turns short of it: further is fine on ink.
        if np.hypot(*(crossing - corners[j])) <= 2 * epsilon + band or (
                np.hypot(*(crossing - corners[j])) <= CUT_CORNER_SIDE * tolerance_px
                and _on_ink(near, corners[j], crossing)):
            new[j] = crossing
    new = _with_sharp_corners(new, lines, closed, near, tolerance_px)
    # What the way left beside it must be a sharp corner's spur (near a corner), not another stroke.
    if len(beside):
        far = np.min([np.hypot(*(beside - c).T) for c in new], axis=0) > SPUR_REACH * tolerance_px
        if far.sum() > (1 - TRACE_COVERAGE) * total:
            return None
    if not closed:  # the skeleton stops short of the stroke's ends; the ink along the end sides does not
        for (i, j), end, index in (((0, 1), 0, 0), ((-2, -1), 1, -1)):
            run = _ink_run_ends(ink, new[i], new[j], band + 2, band)
            if run:
                new[index] = run[end]
    traced_polyline = Polyline(tuple((round(x, 1), round(y, 1)) for x, y in (frame.to_mm(*q) for q in new)), closed)
    return traced_polyline if not traced_polyline.problems(frame.sheet) else None


def refine_polyline(polyline: Polyline, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> Polyline:
    """The polyline with its points re-measured on the ink, its point count and `closed` kept.

    Each segment is fitted as a line is (`_fit_segment`); a corner becomes the crossing of its two
    fitted segments, an open end the end of its segment's ink. A point whose new place is not within
    the matching tolerance of the model's stays where the model put it.
    """
    traced = trace_polyline(polyline, ink, frame, tolerance_mm)
    if traced is not None:
        return traced
    points = [np.array(frame.to_px(x, y)) for x, y in polyline.points]
    n = len(points)
    pairs = [(i, (i + 1) % n) for i in range(n if polyline.closed else n - 1)]
    if any(np.hypot(*(points[j] - points[i])) < 4 for i, j in pairs):
        return polyline
    band, reach, extend = _search_sizes(ink, frame, tolerance_mm)
    fitted = [_fit_segment(ink, points[i], points[j], reach, band) for i, j in pairs]
    new = list(points)
    for k, (i, j) in enumerate(pairs):  # the corner at j, between segment k and the next
        following = (k + 1) % len(pairs) if polyline.closed else k + 1
        if following < len(pairs) and fitted[k] is not None and fitted[following] is not None:
            corner = _intersection(*fitted[k], *fitted[following])
            if corner is not None:
                new[j] = corner
    if not polyline.closed:
        for k, end, index in ((0, 0, 0), (len(pairs) - 1, 1, n - 1)):
            ends = fitted[k] is not None and _ink_run_ends(ink, *fitted[k], extend, band)
            if ends:
                new[index] = ends[end]
    limit = tolerance_mm * frame.px_per_mm
    kept = [q if np.hypot(*(q - p)) <= limit else p for p, q in zip(points, new)]
    refined = dataclasses.replace(polyline, points=tuple(
        (round(x, 1), round(y, 1)) for x, y in (frame.to_mm(*q) for q in kept)))
    return refined if not refined.problems(frame.sheet) else polyline


def _best_offset(ink: np.ndarray, start: np.ndarray, direction: np.ndarray, normal: np.ndarray, length: float,
                 reach: int, band: int, far: int = 0) -> float:
    """How far across (within +-reach pixels) a segment lies on the most ink: the middle of the stroke
    (the offsets within 90% of the best coverage next to the best one, then the centroid of the ink
    across them), 0 when there is no stroke. With no stroke within `reach`, the nearest one within `far`
    that runs along the whole segment."""
    positions = np.arange(0.0, length + 0.5)
    offsets = np.arange(-reach, reach + 1)
    coverage = np.array([_ink_along(ink, start + o * normal, direction, normal, positions, band).mean()
                         for o in offsets])
    if coverage.max() < MIN_OVERLAP and far > reach:
        # No stroke here (a size misread by more than the tolerance): the nearest whole stroke further out.
        offsets = np.array(sorted(range(-far, far + 1), key=abs))
        coverage = np.array([_ink_along(ink, start + o * normal, direction, normal, positions, band).mean()
                             for o in offsets])
        whole = np.flatnonzero(coverage >= FAR_EDGE_COVERAGE)
        if not len(whole):
            return 0
        nearest = offsets[whole[0]]
        return _best_offset(ink, start + nearest * normal, direction, normal, length, band + 1, band) + nearest
    if coverage.max() < MIN_OVERLAP:
        return 0
    good = coverage >= 0.9 * coverage.max()
    best = int(np.argmax(coverage - 1e-6 * np.abs(offsets)))
    low, high = best, best
    while low > 0 and good[low - 1]:
        low -= 1
    while high < len(offsets) - 1 and good[high + 1]:
        high += 1
    middle = (int(offsets[low]) + int(offsets[high])) / 2
    # Sub-pixel: the centroid across the stroke of its ink pixels (no slack), over the whole segment.
    near = np.arange(np.floor(middle) - band - 1, np.ceil(middle) + band + 2)
    counts = np.array([_ink_at(ink, start + o * normal + positions[:, None] * direction).sum() for o in near])
    return float(counts @ near / counts.sum()) if counts.sum() else middle


def refine_rectangle(rect: Rectangle, ink: np.ndarray, frame: Frame, tolerance_mm: float
                     ) -> tuple[Rectangle, dict]:
    """The rectangle with each edge re-measured on the ink, within the matching tolerance of the model's.

    A size the model read from its annotation is kept when the ink agrees with it to half the
    tolerance (then only the position moves); otherwise the ink's size replaces it.
    """
    scale = frame.px_per_mm
    tolerance_px = tolerance_mm * scale
    left, top = frame.to_px(rect.x, rect.y + rect.height)
    right, bottom = frame.to_px(rect.x + rect.width, rect.y)
    if right - left < 4 or bottom - top < 4:
        return rect, {}
    band = _band(ink)
    reach = max(1, int(round(tolerance_px)))
    down, across = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    # Each edge without its corners' last 15%: the neighbouring edges' ink is not evidence for it.
    h_in, w_in = 0.15 * (bottom - top), 0.15 * (right - left)
    v_len, h_len = (bottom - top) - 2 * h_in, (right - left) - 2 * w_in
    far = int(round(FAR_EDGE_TOLERANCES * tolerance_px))
    new_left = left + _best_offset(ink, np.array([left, top + h_in]), down, across, v_len, reach, band, far)
    new_right = right + _best_offset(ink, np.array([right, top + h_in]), down, across, v_len, reach, band, far)
    new_top = top + _best_offset(ink, np.array([left + w_in, top]), across, down, h_len, reach, band, far)
    new_bottom = bottom + _best_offset(ink, np.array([left + w_in, bottom]), across, down, h_len, reach, band, far)
    if new_right - new_left < 2 or new_bottom - new_top < 2:
        return rect, {}
    (x0, y1), (x1, y0) = frame.to_mm(new_left, new_top), frame.to_mm(new_right, new_bottom)

    def place(low: float, high: float, read: float) -> tuple[float, float]:
        if abs((high - low) - read) <= tolerance_mm / 2:
            return round((low + high) / 2 - read / 2, 1), read  # the reading, centred on the ink
        return round(low, 1), round(high - low, 1)

    (x, width), (y, height) = place(x0, x1, rect.width), place(y0, y1, rect.height)
    refined = Rectangle(x, y, width, height)
    return (refined if not refined.problems(frame.sheet) else rect), {"width": x1 - x0, "height": y1 - y0,
                                                                       "mm_per_px": 1 / scale}


def _close_linear_gaps(on: np.ndarray, max_gap: int) -> np.ndarray:
    out = on.copy()
    idx = np.flatnonzero(on)
    for i, j in zip(idx[:-1], idx[1:]):
        if 1 < j - i <= max_gap + 1:
            out[i:j] = True
    return out


def _linear_runs(on: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (first index, length)."""
    padded = np.concatenate([[False], on, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def working_ink(image: np.ndarray, sheet: Sheet) -> tuple[np.ndarray, Frame]:
    """The image's ink mask at most WORKING_SIDE pixels long, and the frame that maps it to the sheet."""
    image = grey(image)
    scale = WORKING_SIDE / max(image.shape)
    if scale < 1:  # more pixels would cost time and add no precision that the tolerances need
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    ink = ink_mask(image)
    return ink, Frame(sheet, ink.shape[1], ink.shape[0])


def longest_side(polyline: Polyline) -> float:
    """The length of a polyline's longest side (a closed one's closing side included)."""
    return float(np.hypot(*np.diff(np.array(polyline.path(), float), axis=0).T).max())


ALONE_MIN_SIDE = 3.0  # tolerances: an arrowhead's sides are shorter (`drawn_alone`)


def drawn_alone(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive]) -> list[bool]:
    """For each primitive, whether it is a polyline drawn as a stroke of its own: traced on the image's
    ink (`trace_polyline`), it gives itself back (no other ink joins it, as a dimension line's
    arrowheads and extension lines join theirs), and a side of it is longer than an arrowhead's."""
    if not any(isinstance(p, Polyline) for p in primitives):
        return [False] * len(primitives)
    ink, frame = working_ink(image, sheet)
    tolerance_mm = tolerance(sheet)
    out = []
    for p in primitives:
        if not isinstance(p, Polyline):
            out.append(False)
            continue
        traced = trace_polyline(p, ink, frame, tolerance_mm)
        out.append(longest_side(p) >= ALONE_MIN_SIDE * tolerance_mm and traced is not None
                   and pair_error(traced, p, sheet) is not None)
    return out


def measure_primitives(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive],
                       tolerance_mm: float | None = None) -> tuple[list[Primitive], list[dict[str, float]]]:
    """The primitives re-measured on the image's ink, and for each the sizes the ink shows, in mm
    (a rectangle's "width" and "height", a circle's or arc's "radius", with "mm_per_px", the size of a
    pixel they were measured with; {} when not measured)."""
    ink, frame = working_ink(image, sheet)
    tolerance_mm = tolerance(sheet) if tolerance_mm is None else tolerance_mm
    measured = {Arc: refine_arc, Circle: refine_circle, Rectangle: refine_rectangle}
    positioned = {Line: refine_line, Polyline: refine_polyline}
    out, sizes = [], []
    for p in primitives:
        if type(p) in measured:
            p, size = measured[type(p)](p, ink, frame, tolerance_mm)
        else:
            p, size = (positioned[type(p)](p, ink, frame, tolerance_mm) if type(p) in positioned else p), {}
        out.append(p)
        sizes.append(size)
    out = with_bent_lines_traced(out, ink, frame, tolerance_mm)
    near = _near_ink(ink)
    sizes = [{**size, "ink_share": ink_share(p, near, frame)} if isinstance(p, (Line, Rectangle, Polyline)) else size
             for p, size in zip(out, sizes)]
    return out, sizes


OTHERS_SHARE = 0.3  # a traced stroke that other primitives lie along for more than this share is theirs


def with_bent_lines_traced(primitives: Sequence[Primitive], ink: np.ndarray, frame: Frame,
                           tolerance_mm: float) -> list[Primitive]:
    """The primitives with each line whose ink bends replaced by the polyline the ink shows.

    The model sometimes writes a line from one end of a bent stroke to the other, or along one of its
    sides. Where the line's stroke, traced alone (`trace_polyline`), is an open polyline of three or
    more corners, traced again gives itself back, and no other primitive lies along it (a line along
    a rectangle's side is a repeat, not a bend), that polyline replaces the line.
    """
    if not any(isinstance(p, Line) for p in primitives):
        return list(primitives)
    band = _band(ink)
    out = list(primitives)
    for i, line in enumerate(primitives):
        if not isinstance(line, Line):
            continue
        traced = trace_polyline(Polyline(((line.x1, line.y1), (line.x2, line.y2)), False), ink, frame, tolerance_mm)
        if traced is None or traced.closed or len(traced.points) < 3:
            continue
        again = trace_polyline(traced, ink, frame, tolerance_mm)
        if again is None or pair_error(again, traced, frame.sheet) is None:
            continue
        others = _strokes_mask(ink.shape, frame, [p for k, p in enumerate(out) if k != i], 2 * band + 3)
        if _ink_at(others, _outline_px(traced, frame)).mean() <= OTHERS_SHARE:
            out[i] = traced
    return out


def _strokes_mask(shape: tuple[int, int], frame: Frame, primitives: Sequence[Primitive], width: int,
                  line_type: int = cv2.LINE_8) -> np.ndarray:
    """(H, W) bool: where the primitives' strokes run, `width` pixels wide (with `cv2.LINE_AA`, every
    pixel the anti-aliased stroke touches)."""
    # Here, not at the top: the outputs package imports the DXF and drawing libraries, which
    # measuring never needs.
    from cad2program.outputs.scene import primitive_polyline

    mask = np.zeros(shape, np.uint8)
    for primitive in primitives:
        points, closed = primitive_polyline(primitive)
        px = np.array([frame.to_px(x, y) for x, y in points]) * 16  # 4 bits of sub-pixel precision
        cv2.polylines(mask, [np.round(px).astype(np.int32)], closed, 255, width, line_type, shift=4)
    return mask > 0


def _along(corners: np.ndarray) -> np.ndarray:
    """(N, 2) points a pixel apart along the straight path through `corners` (pixels, col and row)."""
    return np.concatenate([a + np.linspace(0, 1, max(2, int(np.hypot(*(b - a))) + 1))[:, None] * (b - a)
                           for a, b in zip(corners[:-1], corners[1:])])


def _outline_px(primitive: Line | Rectangle | Polyline, frame: Frame) -> np.ndarray:
    """(N, 2) pixel (col, row) points a pixel apart along a straight-edged primitive's strokes."""
    if isinstance(primitive, Line):
        corners = [(primitive.x1, primitive.y1), (primitive.x2, primitive.y2)]
    elif isinstance(primitive, Rectangle):
        x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
    else:
        corners = primitive.path()
    return _along(np.array([frame.to_px(x, y) for x, y in corners]))


def _near_ink(ink: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ink widened by a line's width (`_band`), where a stroke drawn along counts as on ink."""
    band = _band(ink)
    return cv2.dilate(ink.astype(np.uint8), np.ones((2 * band + 1,) * 2, np.uint8)).astype(bool)


def ink_share(primitive: Line | Rectangle | Polyline, near: np.ndarray, frame: Frame) -> float:
    """The share of a straight-edged primitive's strokes that lies on ink (`near`: `_near_ink`).
    After re-measuring, a drawn one lies on ink nearly all along; one the model saw where nothing is
    drawn does not (`recognizer.MIN_INK_SHARE` says where the line is drawn, per type)."""
    return float(_ink_at(near, _outline_px(primitive, frame)).mean())


def refine_primitives(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive],
                      tolerance_mm: float | None = None) -> list[Primitive]:
    """The primitives re-measured on the image's ink (`measure_primitives` without the sizes)."""
    return measure_primitives(image, sheet, primitives, tolerance_mm)[0]


ERASE_SHARE = 0.012  # strokes are erased this share of the image's longer side wide (a pen's width and wobble)


def erase_primitives(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive]) -> np.ndarray:
    """(H, W) grey uint8: the image with the primitives' strokes painted over with the paper around
    them, so that what is left is what they do not explain (the annotations, and anything missed)."""
    image = grey(image)
    frame = Frame(sheet, image.shape[1], image.shape[0])
    width = max(3, round(max(image.shape) * ERASE_SHARE))
    strokes = _strokes_mask(image.shape, frame, primitives, width, cv2.LINE_AA)
    return np.where(strokes, paper_around(image), image)
