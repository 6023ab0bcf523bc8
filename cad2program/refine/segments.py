"""Measuring lines and rectangles on the ink: each straight side is searched across, within the
matching tolerance, for the offset and angle where most ink lies along it, and its ends are moved to
where its run of ink starts and ends."""

from __future__ import annotations

import numpy as np

from cad2program.contract.program import Line, Rectangle
from cad2program.refine.ink import MIN_OVERLAP, Frame, band_width, close_linear_gaps, ink_along, ink_at, linear_runs

CENTRE_SEARCH_SHARE = 1.0  # segments are searched across within this share of the matching tolerance
FAR_EDGE_TOLERANCES = 4  # a rectangle's edge with no stroke near is searched this many tolerances out
FAR_EDGE_COVERAGE = 0.8  # ... for a stroke along this share of it


def _segment_coverage(ink: np.ndarray, p1: np.ndarray, p2: np.ndarray, normal: np.ndarray,
                      offsets1: np.ndarray, offsets2: np.ndarray, band: int) -> np.ndarray:
    """(len(offsets1), len(offsets2)): the share of each candidate segment (ends moved across by the
    offsets) with ink within `band` across it, sampled a pixel apart, all candidates at once."""
    share = np.linspace(0.0, 1.0, int(np.hypot(*(p2 - p1))) + 1)  # (L,) where along the segment
    across = offsets1[:, None, None] * (1 - share) + offsets2[None, :, None] * share  # (O1, O2, L)
    across = across[..., None] + np.arange(-band, band + 1)  # (O1, O2, L, 2 band + 1)
    points = (p1 + share[:, None] * (p2 - p1))[None, None, :, None, :] + across[..., None] * normal
    hit = ink_at(ink, points)
    return hit.any(axis=-1).mean(axis=-1)


def fit_segment(ink: np.ndarray, p1: np.ndarray, p2: np.ndarray, reach: int, band: int
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


def ink_run_ends(ink: np.ndarray, a: np.ndarray, b: np.ndarray, extend: int, band: int
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the ink along the line through a, b starts and ends: the run (searched up to `extend`
    pixels beyond a and b, gaps of a few pixels closed) that covers a-b most. None when no run
    covers enough of it."""
    length = float(np.hypot(*(b - a)))
    seg = (b - a) / length
    positions = np.arange(-extend, length + extend + 0.5)
    along = close_linear_gaps(ink_along(ink, a, seg, np.array([-seg[1], seg[0]]), positions, band),
                               max(2, band * 2))
    inside = (positions >= 0) & (positions <= length)
    best_run, best_overlap = None, 0
    for first, count in linear_runs(along):
        overlap = int(inside[first:first + count].sum())
        if overlap > best_overlap:
            best_run, best_overlap = (first, count), overlap
    if best_run is None or best_overlap < MIN_OVERLAP * inside.sum():
        return None
    first, count = best_run
    return a + positions[first] * seg, a + positions[first + count - 1] * seg


def search_sizes(ink: np.ndarray, frame: Frame, tolerance_mm: float) -> tuple[int, int, int]:
    """(band, reach, extend) in pixels: a line's width across, how far across a segment is searched
    (half the matching tolerance), how far beyond its ends (three tolerances: the model's ends can be
    that far out, and the ink's own end stops the search anyway)."""
    tolerance_px = tolerance_mm * frame.px_per_mm
    return (band_width(ink), max(1, int(round(CENTRE_SEARCH_SHARE * tolerance_px))),
            int(np.ceil(3 * tolerance_px)) + 2)


def refine_line(line: Line, ink: np.ndarray, frame: Frame, tolerance_mm: float) -> Line:
    """The line with its end points re-measured on the ink.

    First the line itself (`fit_segment`): each end point may move across the line by up to half the
    matching tolerance, and the pair whose segment holds the most ink wins. Then its ends
    (`ink_run_ends`). When too little of the model's segment is ink, the line is kept as it was.
    """
    p1, p2 = np.array(frame.to_px(line.x1, line.y1)), np.array(frame.to_px(line.x2, line.y2))
    if np.hypot(*(p2 - p1)) < 4:
        return line
    band, reach, extend = search_sizes(ink, frame, tolerance_mm)
    fitted = fit_segment(ink, p1, p2, reach, band)
    if fitted is None:  # no stroke near: the nearest parallel one along most of it, a few tolerances out
        direction = (p2 - p1) / float(np.hypot(*(p2 - p1)))
        normal = np.array([-direction[1], direction[0]])
        offset = _best_offset(ink, p1, direction, normal, float(np.hypot(*(p2 - p1))), 0, band,
                              int(round(FAR_EDGE_TOLERANCES * tolerance_mm * frame.px_per_mm)))
        fitted = offset and fit_segment(ink, p1 + offset * normal, p2 + offset * normal, reach, band)
    ends = fitted and ink_run_ends(ink, *fitted, extend, band)
    if not ends:
        return line
    (x1, y1), (x2, y2) = frame.to_mm(*ends[0]), frame.to_mm(*ends[1])
    refined = Line(round(x1, 1), round(y1, 1), round(x2, 1), round(y2, 1))
    return refined if not refined.problems(frame.sheet) else line


PARALLEL_SINE = 0.2  # lines under about 12 degrees apart are taken as parallel: their crossing is not trusted


def intersection(a1: np.ndarray, b1: np.ndarray, a2: np.ndarray, b2: np.ndarray,
                  min_sine: float = PARALLEL_SINE) -> np.ndarray | None:
    """Where the lines through a1-b1 and a2-b2 cross; None when they are nearly parallel (the sine of
    the angle between them under `min_sine`)."""
    d1, d2 = b1 - a1, b2 - a2
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(cross) < min_sine * np.hypot(*d1) * np.hypot(*d2):
        return None
    t = ((a2 - a1)[0] * d2[1] - (a2 - a1)[1] * d2[0]) / cross
    return a1 + t * d1


def _best_offset(ink: np.ndarray, start: np.ndarray, direction: np.ndarray, normal: np.ndarray, length: float,
                 reach: int, band: int, far: int = 0) -> float:
    """How far across (within +-reach pixels) a segment lies on the most ink: the middle of the stroke
    (the offsets within 90% of the best coverage next to the best one, then the centroid of the ink
    across them), 0 when there is no stroke. With no stroke within `reach`, the nearest one within `far`
    that runs along the whole segment."""
    positions = np.arange(0.0, length + 0.5)
    offsets = np.arange(-reach, reach + 1)
    coverage = np.array([ink_along(ink, start + o * normal, direction, normal, positions, band).mean()
                         for o in offsets])
    if coverage.max() < MIN_OVERLAP and far > reach:
        # No stroke here (a size misread by more than the tolerance): the nearest whole stroke further out.
        offsets = np.array(sorted(range(-far, far + 1), key=abs))
        coverage = np.array([ink_along(ink, start + o * normal, direction, normal, positions, band).mean()
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
    counts = np.array([ink_at(ink, start + o * normal + positions[:, None] * direction).sum() for o in near])
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
    band = band_width(ink)
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
