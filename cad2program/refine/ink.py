"""The ink of a drawing's image, and the frame that maps its pixels to the sheet's millimetres.

Every measurer works on the ink mask at the working size (`Ink`), computed once per image, and on
the helpers here that look along strokes: how much of a straight path lies on ink, where runs of ink
start and end, where primitives' strokes run.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import cv2
import numpy as np

from cad2program.contract.geometry import primitive_polyline
from cad2program.contract.program import Line, Polyline, Primitive, Rectangle, Sheet


MIN_OVERLAP = 0.4  # share of the model's span a run of ink must cover to replace it
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


def ink_mask(image: np.ndarray, paper: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: ink, i.e. pixels clearly darker than the paper around them (`paper`: the image's
    `paper_around`, when the caller has it).

    A pixel is ink when it is darker than the local background (a wide median) by a margin that
    adapts to the image's contrast; the local background makes uneven light (photos) and paper
    tint (scans) harmless.
    """
    image = grey(image)
    paper = paper_around(image) if paper is None else paper
    darker = paper.astype(np.int16) - image.astype(np.int16)
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


@dataclasses.dataclass(frozen=True, eq=False)
class Ink:
    """One image's ink at the working size (`ink_mask` at most WORKING_SIDE pixels long), computed once
    and shared by every measurement on that image; what is derived from it is computed on first use."""

    mask: np.ndarray  # (H, W) bool
    # (H, W) uint8: the image's `paper_around`, kept where the mask is at the image's own size (the
    # image was not shrunk), so that erasing on the same image and reading its text do not compute it again
    paper: np.ndarray | None = None

    @classmethod
    def of(cls, image: np.ndarray) -> "Ink":
        working = working_grey(image)
        paper = paper_around(working)
        return cls(ink_mask(working, paper), paper if working.shape == image.shape[:2] else None)

    def at_full_size(self, image: np.ndarray) -> bool:
        """Whether this is the ink of `image` at its own size (not shrunk to WORKING_SIDE)."""
        return self.paper is not None and self.mask.shape == image.shape[:2]

    def frame(self, sheet: Sheet) -> Frame:
        """The frame that maps this mask to a sheet."""
        return Frame(sheet, self.mask.shape[1], self.mask.shape[0])

    @functools.cached_property
    def near(self) -> np.ndarray:
        """(H, W) bool: `near_ink` of the mask."""
        return near_ink(self.mask)


def as_ink(image_or_ink: np.ndarray | Ink) -> Ink:
    """An image's `Ink` (computed here), or the `Ink` given."""
    return image_or_ink if isinstance(image_or_ink, Ink) else Ink.of(image_or_ink)


def working_grey(image: np.ndarray) -> np.ndarray:
    """The image grey, at most WORKING_SIDE pixels long: what its ink mask is computed on."""
    image = grey(image)
    scale = WORKING_SIDE / max(image.shape)
    if scale < 1:  # more pixels would cost time and add no precision that the tolerances need
        image = cv2.resize(image, (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))),
                           interpolation=cv2.INTER_AREA)
    return image


def working_mask(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: the image's ink mask at most WORKING_SIDE pixels long."""
    return ink_mask(working_grey(image))


def band_width(ink: np.ndarray) -> int:
    """Pixels of slack across a stroke: about a line's width, and a hand's wobble."""
    return max(1, int(round(0.003 * max(ink.shape))))


def ink_at(ink: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Ink at points (..., 2) given as (col, row); outside the image is paper."""
    c, r = np.rint(points[..., 0]).astype(np.int64), np.rint(points[..., 1]).astype(np.int64)
    inside = (c >= 0) & (c < ink.shape[1]) & (r >= 0) & (r < ink.shape[0])
    return ink[np.clip(r, 0, ink.shape[0] - 1), np.clip(c, 0, ink.shape[1] - 1)] & inside


def near_ink(ink: np.ndarray) -> np.ndarray:
    """(H, W) bool: the ink widened by a line's width (`band_width`), where a stroke drawn along counts as on ink."""
    band = band_width(ink)
    return cv2.dilate(ink.astype(np.uint8), np.ones((2 * band + 1,) * 2, np.uint8)).astype(bool)


def strokes_mask(shape: tuple[int, int], frame: Frame, primitives: Sequence[Primitive], width: int,
                  line_type: int = cv2.LINE_8) -> np.ndarray:
    """(H, W) bool: where the primitives' strokes run, `width` pixels wide (with `cv2.LINE_AA`, every
    pixel the anti-aliased stroke touches)."""
    mask = np.zeros(shape, np.uint8)
    for primitive in primitives:
        points, closed = primitive_polyline(primitive)
        px = np.array([frame.to_px(x, y) for x, y in points]) * 16  # 4 bits of sub-pixel precision
        cv2.polylines(mask, [np.round(px).astype(np.int32)], closed, 255, width, line_type, shift=4)
    return mask > 0


def along(corners: np.ndarray) -> np.ndarray:
    """(N, 2) points a pixel apart along the straight path through `corners` (pixels, col and row)."""
    return np.concatenate([a + np.linspace(0, 1, max(2, int(np.hypot(*(b - a))) + 1))[:, None] * (b - a)
                           for a, b in zip(corners[:-1], corners[1:])])


def outline_px(primitive: Line | Rectangle | Polyline, frame: Frame) -> np.ndarray:
    """(N, 2) pixel (col, row) points a pixel apart along a straight-edged primitive's strokes."""
    if isinstance(primitive, Line):
        corners = [(primitive.x1, primitive.y1), (primitive.x2, primitive.y2)]
    elif isinstance(primitive, Rectangle):
        x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)]
    else:
        corners = primitive.path()
    return along(np.array([frame.to_px(x, y) for x, y in corners]))


def ink_share(primitive: Line | Rectangle | Polyline, near: np.ndarray, frame: Frame) -> float:
    """The share of a straight-edged primitive's strokes that lies on ink (`near`: `near_ink`).
    After re-measuring, a drawn one lies on ink nearly all along; one the model saw where nothing is
    drawn does not (`recognizer.MIN_INK_SHARE` says where the line is drawn, per type)."""
    return float(ink_at(near, outline_px(primitive, frame)).mean())


def close_linear_gaps(on: np.ndarray, max_gap: int) -> np.ndarray:
    out = on.copy()
    idx = np.flatnonzero(on)
    for i, j in zip(idx[:-1], idx[1:]):
        if 1 < j - i <= max_gap + 1:
            out[i:j] = True
    return out


def linear_runs(on: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True as (first index, length)."""
    padded = np.concatenate([[False], on, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def ink_along(ink: np.ndarray, start: np.ndarray, direction: np.ndarray, normal: np.ndarray,
               positions: np.ndarray, band: int) -> np.ndarray:
    """(len(positions),) bool: ink within `band` pixels across the line start + t * direction at each t."""
    across = np.arange(-band, band + 1)
    points = start[None, None, :] + positions[:, None, None] * direction + across[None, :, None] * normal
    hit = ink_at(ink, points)
    return hit.any(axis=1)
