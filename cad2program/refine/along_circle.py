"""Ink along a circle, the measurements arcs and circles share: which whole degrees of a circle carry
ink (`degrees_by_radius`, `inked_degrees`), runs of them round the circle (`runs`, `close_gaps`), the
circle through the most ink near a guess (`fit_circle`), the least-squares circle of a stroke
(`least_squares_circle`), a stroke's half width, and a drafter's centre mark near a centre."""

from __future__ import annotations

import cv2
import numpy as np

MAX_GAP_DEGREES = 4  # gaps of ink this short along an arc are closed


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


def degrees_by_radius(cols: np.ndarray, rows: np.ndarray, col: float, row: float, radii: np.ndarray,
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


def fit_circle(ink: np.ndarray, col: float, row: float, radius_px: float, tolerance_px: float,
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
    cols, rows = ink_pixels_near(ink, col, row, int(radii[-1] + reach + band + 2))
    if len(rows) == 0:
        return None
    best = (-1, 0.0, 0, 0, radius_px)  # (pixels, -how far from the model's circle, dc, dr, radius)
    bins = int(2 * radii[-1]) + 4
    step = max(1, reach // 3)  # a coarse grid, then every pixel around its best: 6x fewer centres than all
    # Only ink within a pixel of some radius, seen from some centre searched, can count: a centre's offset
    # (at most `farthest`) moves a pixel's distance by as much, so the rest is left out before the search.
    farthest = np.sqrt(2) * (reach + step)
    distance = np.hypot(cols - col, rows - row)
    seen = (distance >= radii[0] - 1.25 - farthest) & (distance < radii[-1] + 1.75 + farthest)
    fit_cols, fit_rows = cols[seen], rows[seen]
    # Where some degrees are outside the span, a pixel's degree seen from a centre searched is within
    # `farthest`'s angle of its degree seen from (col, row): pixels whose every such degree is in the
    # span always count and those with none never do, so only the rest need their angle per centre.
    always, unsure = (np.ones(len(fit_rows), bool), np.zeros(len(fit_rows), bool)) if predicted.all() else \
        _span_sure(fit_cols - col, row - fit_rows, distance[seen], farthest, predicted)
    keep = always | unsure
    fit_cols, fit_rows, unsure = fit_cols[keep], fit_rows[keep], unsure[keep]
    unsure_at = np.flatnonzero(unsure)

    def fit(centres):
        nonlocal best
        if not centres:
            return
        centres = np.array(centres, np.float64)  # (C, 2) offsets of the centre, all scored at once
        dx = fit_cols[None, :] - (col + centres[:, :1])  # (C, N); y up on the sheet, down in the image
        dy = (row + centres[:, 1:]) - fit_rows[None, :]
        # half-pixel bins; in place, and a square root rather than np.hypot (4x slower, for overflow
        # safety that pixel offsets do not need): this is most of measuring an arc's time
        halves = dx * dx
        halves += dy * dy
        np.sqrt(halves, out=halves)
        halves *= 2
        np.rint(halves, out=halves)
        halves = np.minimum(halves.astype(np.int64), bins - 1)
        flat = np.arange(len(centres))[:, None] * bins + halves
        if len(unsure_at):  # an unsure pixel counts only from the centres that see it in the span
            degree = np.floor(np.degrees(np.arctan2(dy[:, unsure_at], dx[:, unsure_at]))).astype(np.int64) % 360
            flat[:, unsure_at] = np.where(predicted[degree], flat[:, unsure_at], -1)
            flat = flat[flat >= 0]
        counts = np.bincount(flat.ravel(), minlength=len(centres) * bins).reshape(len(centres), bins)
        total = np.cumsum(counts, axis=1)
        total = np.concatenate([np.zeros((len(centres), 3), np.int64), total, total[:, -1:], total[:, -1:]], axis=1)
        near = total[:, 5:] - total[:, :-5]  # (C, bins): within a pixel of each radius (5 half-pixel bins)
        candidates = np.arange(2 * radii[0], min(2 * radii[-1] + 1, bins))
        score = near[:, candidates] - 1e-3 * np.abs(candidates / 2 - radius_px)
        k = candidates[np.argmax(score, axis=1)]  # (C,) each centre's best radius, in half pixels
        pixels = near[np.arange(len(centres)), k]
        closeness = -(centres[:, 0] ** 2 + centres[:, 1] ** 2 + (k / 2 - radius_px) ** 2)
        # the most pixels, then the nearest the model's circle, then the first searched
        top = np.flatnonzero(pixels == pixels.max())
        c = int(top[np.argmax(closeness[top])])
        key = (int(pixels[c]), float(closeness[c]), centres[c, 0], centres[c, 1], k[c] / 2)
        if key[:2] > best[:2]:
            best = key

    fit([(dc, dr) for dc in range(-reach, reach + 1, step) for dr in range(-reach, reach + 1, step)])
    c0, r0 = best[2], best[3]
    fit([(c0 + i, r0 + j) for i in range(1 - step, step) for j in range(1 - step, step) if i or j])
    _, _, dc, dr, radius = best
    along = degrees_by_radius(cols, rows, col + dc, row + dr, np.array([int(round(radius))]), band)[0]
    return col + dc, row + dr, float(radius), along


def _span_sure(dx: np.ndarray, dy: np.ndarray, distance: np.ndarray, farthest: float, predicted: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """For pixels at (dx, dy) from a centre (y up), (always, unsure): whether each one's whole degree,
    seen from any centre within `farthest` pixels of it, is in `predicted` (360,) for sure, or may be
    in it and may not. A pixel that is neither is in it from no such centre. A degree of slack on each
    side covers rounding."""
    angle = np.degrees(np.arctan2(dy, dx))
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(distance > farthest, np.degrees(np.arcsin(np.minimum(1.0, farthest / distance))), 180.0)
    low = np.floor(angle - shift - 1).astype(np.int64)
    high = np.floor(angle + shift + 1).astype(np.int64)
    high = np.minimum(high, low + 359)  # the whole round at most
    # Predicted degrees in [low, high] (around the round) from the running count over two rounds.
    running = np.concatenate([[0], np.cumsum(np.tile(predicted.astype(np.int64), 2))])
    start = low % 360
    inside = running[start + (high - low) + 1] - running[start]
    return inside == high - low + 1, (inside > 0) & (inside < high - low + 1)


def max_gap(radius_px: float) -> int:
    """The gap in degrees closed along a circle: MAX_GAP_DEGREES, or two pixels' worth on a small
    circle (a one-pixel stroke of radius 15 px leaves every fourth degree without a pixel)."""
    return max(MAX_GAP_DEGREES, int(np.ceil(2 * 360 / (2 * np.pi * max(radius_px, 1.0)))))


def crop_around(ink: np.ndarray, col: float, row: float, reach: int) -> tuple[np.ndarray, int, int]:
    """The ink within `reach` pixels (a square) of (col, row), and where the crop's top and left lie."""
    top, left = max(0, int(row) - reach), max(0, int(col) - reach)
    return ink[top:int(row) + reach + 1, left:int(col) + reach + 1], top, left


def ink_pixels_near(ink: np.ndarray, col: float, row: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """(cols, rows) of the ink pixels within `reach` pixels (a square) of (col, row)."""
    crop, top, left = crop_around(ink, col, row, reach)
    rows, cols = np.nonzero(crop)
    return cols + left, rows + top


def run_degrees(run: tuple[int, int]) -> np.ndarray:
    """(360,) bool: the whole degrees of a run of ink (first degree, length) round a circle."""
    return ((np.arange(360) - run[0]) % 360) < run[1]


def near_stroke(cols: np.ndarray, rows: np.ndarray, col: float, row: float, radius: float, on: np.ndarray,
                 reach: float) -> np.ndarray:
    """Which of the ink pixels (cols, rows) lie within `reach` pixels of the circle, in its degrees `on`."""
    dx, dy = cols - col, row - rows  # y up on the sheet, down in the image
    degree = np.floor(np.degrees(np.arctan2(dy, dx))).astype(np.int64) % 360
    return (np.abs(np.hypot(dx, dy) - radius) <= reach) & on[degree]


def inked_degrees(ink: np.ndarray, col: float, row: float, radius: float, band: int) -> np.ndarray:
    """(360,) bool: which degrees of the circle (pixels) have ink within `band` of it."""
    cols, rows = ink_pixels_near(ink, col, row, int(radius + 2 * band + 2))
    return degrees_by_radius(cols, rows, col, row, np.array([int(round(radius))]), band)[0]


def soft_circle_fit(x: np.ndarray, y: np.ndarray, radius: float, steps: int = 30) -> tuple[float, float, float]:
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


def least_squares_circle(ink: np.ndarray, col: float, row: float, radius: float, on: np.ndarray,
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
    cols, rows = ink_pixels_near(ink, col, row, int(radius + 2 * reach + 2))
    circle = None
    for _ in range(rounds):
        keep = near_stroke(cols, rows, col, row, radius, on, reach)
        if keep.sum() < 12:
            return circle
        x, y = (cols[keep] - col).astype(np.float64), (row - rows[keep]).astype(np.float64)
        a, b, fitted = soft_circle_fit(x, y, radius)
        col, row, radius = col + a, row - b, fitted
        circle = (col, row, radius)
    return circle


def stroke_half_width(ink: np.ndarray, col: float, row: float, radius: float, first: int, length: int,
                       band: int) -> float:
    """Pixels from the middle of a circle's stroke to its edge, over the degrees [first, first + length):
    the median over degrees of the largest distance to paper within `band` pixels of the circle (a
    distance transform, less the half pixel by which it reaches past the stroke's edge), so that a
    circle a pixel or two off the stroke's middle measures it as well. 0 when the circle finds no ink."""
    crop, top, left = crop_around(ink, col, row, int(radius) + 16)  # the whole stroke, and paper beyond it
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


def centre_mark(ink: np.ndarray, col: float, row: float, reach: int, band: int) -> tuple[float, float] | None:
    """The middle (col, row) of the centre mark nearest (col, row) within `reach` pixels: a small
    upright cross of ink standing alone (two strokes of about equal length crossing at their middles),
    as drafters mark an arc's or a circle's centre. None when there is none."""
    crop, top, left = crop_around(ink, col, row, 2 * reach)  # the whole of a mark whose middle is in reach
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
