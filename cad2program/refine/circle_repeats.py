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
    near = cv2.dilate(ink.mask.astype(np.uint8), np.ones((2 * RING_SLACK_PX + 1,) * 2, np.uint8)).astype(bool)
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
