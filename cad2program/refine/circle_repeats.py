"""Circles drawn again at the size of one already found: the holes of a bolt pattern.

A part's holes often repeat one size, dimensioned once (the contract's undimensioned primitives,
`"annotated": false`), and the model, having read one, often leaves out or misplaces the others. A
round of ink of a found circle's radius, inked nearly all round and not yet explained by a circle,
is such a repeat. The search runs once per radius: the share of the round inked at every centre is
one correlation of the ink (widened by a line's width) with a ring of sample points.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from cad2program.contract.geometry import tolerance
from cad2program.contract.program import Circle, Primitive, Sheet
from cad2program.refine.ink import Ink, as_ink, band_width

RING_SAMPLES = 96  # points along the round: a degree's ink every 3.75 degrees
MIN_RADIUS_PX = 5  # smaller rounds are digits and letters as often as holes
RING_SLACK_PX = 1  # a round counts the ink this many pixels off it (a hand's wobble; the centre searched is per pixel)
# A hole's round stands on bare paper: the rounds this many line widths inside and outside it are
# inked at most MAX_BESIDE_INKED (centre lines and a pitch circle cross them, text fills them).
BESIDE_WIDTHS = 3
MAX_BESIDE_INKED = 0.5
# ... and its inside is mostly paper: at most this share of the disc within it is ink (an arrowhead or
# a blot of text is filled).
MAX_INSIDE_INKED = 0.3


def ring_offsets(radius_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) offsets, RING_SAMPLES of each, of the pixels on a round of `radius_px` around a centre."""
    angles = np.linspace(0, 2 * np.pi, RING_SAMPLES, endpoint=False)
    return np.round(radius_px * np.sin(angles)).astype(int), np.round(radius_px * np.cos(angles)).astype(int)


def inked_share_map(near: np.ndarray, radius_px: float) -> np.ndarray:
    """(H, W) float32: for each centre pixel, the share of the round of `radius_px` around it on
    `near` (ink widened by a line's width); rounds reaching off the image count their outside as bare."""
    reach = int(np.ceil(radius_px)) + 1
    kernel = np.zeros((2 * reach + 1, 2 * reach + 1), np.float32)
    rows, cols = ring_offsets(radius_px)
    np.add.at(kernel, (reach + rows, reach + cols), 1.0 / RING_SAMPLES)
    return cv2.filter2D(near.astype(np.float32), -1, kernel, borderType=cv2.BORDER_CONSTANT)


def ring_slack(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ink widened by RING_SLACK_PX, what a round's samples are looked up on."""
    return cv2.dilate(mask.astype(np.uint8), np.ones((2 * RING_SLACK_PX + 1,) * 2, np.uint8)).astype(bool)


def round_shares(near: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_px: float) -> np.ndarray:
    """(N,) the share of the round of `radius_px` on `near` around each centre (rows, cols), as
    `inked_share_map` gives it there."""
    ring_rows, ring_cols = ring_offsets(radius_px)
    r, c = rows[:, None] + ring_rows[None, :], cols[:, None] + ring_cols[None, :]  # (N, samples)
    inside = (r >= 0) & (r < near.shape[0]) & (c >= 0) & (c < near.shape[1])
    return (near[np.clip(r, 0, near.shape[0] - 1), np.clip(c, 0, near.shape[1] - 1)] & inside).mean(axis=1)


def disc_shares(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray, radius_px: float) -> np.ndarray:
    """(N,) the share of ink in the disc of `radius_px` around each centre (rows, cols)."""
    reach = max(1, int(radius_px))
    dr, dc = np.mgrid[-reach:reach + 1, -reach:reach + 1]
    inside = dr ** 2 + dc ** 2 <= radius_px ** 2
    dr, dc = dr[inside], dc[inside]
    r = np.clip(rows[:, None] + dr[None, :], 0, mask.shape[0] - 1)  # (N, pixels)
    c = np.clip(cols[:, None] + dc[None, :], 0, mask.shape[1] - 1)
    return mask[r, c].mean(axis=1) if len(dr) else np.zeros(len(rows))


def repeated_circles(ink: Ink | np.ndarray, sheet: Sheet, primitives: Sequence[Primitive],
                     min_inked: float, more_radii: Sequence[float] = ()) -> list[Circle]:
    """New circles at the radius of each circle among `primitives` and at `more_radii` (mm), wherever a
    round of that radius is inked at least `min_inked` of the way round on bare paper around a hollow
    middle, and no circle of `primitives` lies within the matching tolerance; the strongest first, none
    within a radius of a stronger one of the same radius. `min_inked` above 1: none."""
    circles = [p for p in primitives if isinstance(p, Circle)]
    radii = {c.radius for c in circles} | set(more_radii)
    if not radii or min_inked > 1:
        return []
    ink = as_ink(ink)
    frame, t = ink.frame(sheet), tolerance(sheet)
    scale = frame.px_per_mm
    found: list[Circle] = []
    near = ring_slack(ink.mask)
    band = band_width(ink.mask)
    beside = BESIDE_WIDTHS * band + 1
    for radius in sorted(radii):
        radius_px = radius * scale
        if radius_px < MIN_RADIUS_PX:
            continue
        share = inked_share_map(near, radius_px)
        # Local maxima only: a round's neighbours a pixel off are inked almost as much.
        peaks = (share >= min_inked) & (share >= cv2.dilate(share, np.ones((3, 3), np.uint8)))
        if not peaks.any():
            continue
        rows, cols = np.nonzero(peaks)
        bare = np.ones(len(rows), bool)
        for other in (radius_px - beside, radius_px + beside):
            if other >= MIN_RADIUS_PX / 2:
                bare &= round_shares(near, rows, cols, other) <= MAX_BESIDE_INKED
        rows, cols = rows[bare], cols[bare]
        hollow = disc_shares(ink.mask, rows, cols, radius_px - band - 1) <= MAX_INSIDE_INKED
        rows, cols = rows[hollow], cols[hollow]
        for k in np.argsort(-share[rows, cols], kind="stable"):
            x, y = frame.to_mm(float(cols[k]), float(rows[k]))
            candidate = Circle(round(x, 1), round(y, 1), radius)
            known = circles + found
            if candidate.problems(sheet) or any(
                    np.hypot(c.x - candidate.x, c.y - candidate.y) <= max(t, radius if c.radius == radius else 0)
                    and abs(c.radius - radius) <= t for c in known):
                continue
            found.append(candidate)
    return found


# Lone rounds: small holes the model cannot see at its input size (on the part-like dev halves the
# circles it missed had a median radius of 0.8% of the sheet's longer side, those it found 2.3%; most
# had centre lines through them or leaders and pitch circles touching them).
LONE_MAX_RADIUS_SHARE = 0.03  # of the mask's longer side: larger rounds the model reads itself
# Candidates come from OpenCV's Hough transform for circles with a low accumulator threshold (on
# parts-ezdxf/dev every missed hole was among its 54 candidates a drawing), then each is judged on
# the ink as a repeat is: inked nearly all round at the best centre and radius near the candidate's,
# bare paper just inside and outside.
HOUGH_VOTES = 12
HOUGH_CANNY = 100
CENTRE_SEARCH_PX = 2  # the candidate's centre is searched this far round, its radius 1.5 px either way
LONE_MAX_INSIDE_INKED = 0.6  # more than a repeat's MAX_INSIDE_INKED: a small hole's centre mark crosses it
# The loops of digits and letters (6, 8, 9, R, Ø) are rounds too; what tells a hole from them is the
# piece of ink (connected component) its round belongs to: the round alone, or crossed by a centre
# mark that reaches past it on every side (its box centred on the round), or part of something larger
# than any glyph (GLYPH_SHARE of the image's longer side: an outline, a leader, a pitch circle).
GLYPH_SHARE = 0.05
# ... and a hole stands on paper further out too, where a glyph's loop has the rest of its glyph and
# the next one: rounds of these multiples of the radius are inked at most LONE_MAX_AROUND_INKED.
LONE_AROUND = (1.6, 2.2)
LONE_MAX_AROUND_INKED = 0.25
CROSS_REACH_WIDTHS = 2  # a centre mark reaches at least this many line widths past the round
# A Ø sign stands just before its number's digits: a round this many of its radii from where a number
# read by the OCR is written is taken for one (a hole's own size is written at its leader's far end).
LONE_TEXT_RADII = 4.0


def lone_rounds(ink: Ink | np.ndarray, sheet: Sheet, primitives: Sequence[Primitive], min_inked: float,
                texts: Sequence[tuple[float, float]] = ()) -> list[Circle]:
    """New circles where the ink shows a small round (MIN_RADIUS_PX to LONE_MAX_RADIUS_SHARE of the
    image in radius) that no circle of `primitives` explains: inked at least `min_inked` of the way
    round, with bare paper just inside and outside (a centre line or a leader may cross it). The
    strongest first, none within the matching tolerance of another circle; the radius is the ink's,
    to 0.1 mm. `texts`: where numbers are written (the centres of their texts, (col, row) in the
    mask's pixels); a round within LONE_TEXT_RADII of one is the Ø before the number, or a digit's loop.
    `min_inked` above 1: none."""
    if min_inked > 1:
        return []
    ink = as_ink(ink)
    frame, t = ink.frame(sheet), tolerance(sheet)
    band = band_width(ink.mask)
    largest = int(LONE_MAX_RADIUS_SHARE * max(ink.mask.shape))
    if largest <= MIN_RADIUS_PX:
        return []
    blurred = cv2.GaussianBlur(ink.mask.astype(np.uint8) * 255, (5, 5), 1.0)
    found = cv2.HoughCircles(blurred, cv2.HOUGH_GRADIENT, dp=1, minDist=2 * MIN_RADIUS_PX, param1=HOUGH_CANNY,
                             param2=HOUGH_VOTES, minRadius=MIN_RADIUS_PX, maxRadius=largest)
    if found is None:
        return []
    near = ring_slack(ink.mask)
    steps = np.arange(-CENTRE_SEARCH_PX, CENTRE_SEARCH_PX + 1)
    offsets = np.array([(dr, dc) for dr in steps for dc in steps])  # (O, 2)
    judged = []
    distance = np.hypot(offsets[:, 0], offsets[:, 1])
    beside = BESIDE_WIDTHS * band + 1
    for col, row, radius_px in found[0]:
        centres = np.round([row, col]).astype(int) + offsets
        radii = np.arange(radius_px - 1.5, radius_px + 1.75, 0.5)
        shares = np.stack([round_shares(near, centres[:, 0], centres[:, 1], r) for r in radii])  # (R, O)
        # Several centres and radii see a stroke a few pixels wide all round: the centre nearest the
        # candidate's among the best, and the middle of its best radii (the stroke's middle).
        share = float(shares.max())
        at = np.flatnonzero(shares.max(axis=0) >= share - 1e-9)
        k = int(at[np.argmin(distance[at])])
        radius = float(np.median(radii[shares[:, k] >= share - 1e-9]))
        r, c = int(centres[k, 0]), int(centres[k, 1])
        if share < min_inked or radius < MIN_RADIUS_PX:
            continue
        # Bare paper just outside, and just inside where the inside is wide enough that a centre mark's
        # cross does not fill it; a middle not filled (a blot, an arrowhead).
        if any(round_shares(near, np.array([r]), np.array([c]), other)[0] > MAX_BESIDE_INKED
               for other in (radius - beside, radius + beside) if other >= MIN_RADIUS_PX):
            continue
        if disc_shares(ink.mask, np.array([r]), np.array([c]), radius - band - 1)[0] > LONE_MAX_INSIDE_INKED:
            continue
        if any(round_shares(near, np.array([r]), np.array([c]), far * radius)[0] > LONE_MAX_AROUND_INKED
               for far in LONE_AROUND):
            continue
        if _slashed(ink.mask, r, c, radius, band):
            continue
        if any(np.hypot(col_t - c, row_t - r) <= LONE_TEXT_RADII * radius for col_t, row_t in texts):
            continue
        judged.append((share, r, c, radius))
    if judged:
        _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.mask.astype(np.uint8), connectivity=8)
        judged = [j for j in judged if not _in_a_glyph(labels, stats, *j[1:], band, max(ink.mask.shape))]
    circles = [p for p in primitives if isinstance(p, Circle)]
    new: list[Circle] = []
    for share, r, c, radius in sorted(judged, key=lambda j: -j[0]):
        x, y = frame.to_mm(float(c), float(r))
        candidate = Circle(round(x, 1), round(y, 1), round(radius / frame.px_per_mm, 1))
        if candidate.radius <= 0 or candidate.problems(sheet) or any(
                np.hypot(q.x - candidate.x, q.y - candidate.y) <= t for q in circles + new):
            continue
        new.append(candidate)
    return new


def _in_a_glyph(labels: np.ndarray, stats: np.ndarray, row: int, col: int, radius: float, band: int, side: int
                ) -> bool:
    """Whether the round at (row, col) is the loop of a glyph: its piece of ink is glyph-sized, not the
    round alone and not a centre mark's cross through it (`lone_rounds`)."""
    ring_rows, ring_cols = ring_offsets(radius)
    r = np.clip(row + ring_rows, 0, labels.shape[0] - 1)
    c = np.clip(col + ring_cols, 0, labels.shape[1] - 1)
    on = labels[r, c]
    on = on[on > 0]
    if not len(on):
        return True
    left, top, width, height, _ = stats[np.bincount(on).argmax()]
    if max(width, height) > GLYPH_SHARE * side:
        return False  # part of something larger than any glyph
    alone = max(width, height) <= 2 * radius + 2 * band + 3
    centred = abs(left + (width - 1) / 2 - col) <= band + 1 and abs(top + (height - 1) / 2 - row) <= band + 1
    crossed = centred and min(width, height) >= 2 * radius + 2 * CROSS_REACH_WIDTHS * band
    return not (alone or crossed)


def _ink_runs(mask: np.ndarray, row: int, col: int, radius: float) -> int:
    """How many separate runs of ink the round of `radius` around (row, col) meets."""
    ring_rows, ring_cols = ring_offsets(radius)
    r, c = row + ring_rows, col + ring_cols
    inside = (r >= 0) & (r < mask.shape[0]) & (c >= 0) & (c < mask.shape[1])
    on = mask[np.clip(r, 0, mask.shape[0] - 1), np.clip(c, 0, mask.shape[1] - 1)] & inside
    return int((on & ~np.roll(on, 1)).sum()) if not on.all() else 1


def _slashed(mask: np.ndarray, row: int, col: int, radius: float, band: int) -> bool:
    """Whether one stroke runs through the round's middle and, just outside it, nothing else meets it
    but that stroke's ends: the slash of a Ø sign (a hole's centre mark crosses it twice; a leader or
    a pitch circle meets it outside too)."""
    return _ink_runs(mask, row, col, radius / 2) == 2 and _ink_runs(mask, row, col, radius + 2 * band + 1) <= 2
