"""The recognised primitives laid over the input image (`overlay`), as PNG or SVG bytes: each primitive
in the colour of its confidence, with a label placed where it hides the least ink."""

from __future__ import annotations

import base64
import dataclasses
import math
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

import cv2
import numpy as np
from PIL import Image, ImageDraw

from cad2program.contract.geometry import arc_sweep, primitive_polyline
from cad2program.contract.program import Arc, Circle, Line, Primitive, Rectangle, Sheet
from cad2program.outputs.draw import (FORMATS, SVG_FONT, PixelMap, check_format, draw_path, label_font,
                                      png_bytes, svg_colour, svg_number, svg_open, svg_shape)
from cad2program.outputs.scene import CAP_HEIGHT_PER_EM, size_label, text_width

# Confidence bands of the overlay, best first: (lowest confidence, colour, legend text).
CONFIDENCE_BANDS = ((0.9, (0, 170, 60), "≥ 0.9"), (0.6, (245, 140, 0), "0.6 – 0.9"),
                    (-math.inf, (225, 30, 30), "< 0.6"))
NO_CONFIDENCE_COLOUR = (20, 110, 240)
OVERLAY_OPACITY = 0.75

def confidence_colour(confidence: float | None) -> tuple[int, int, int]:
    """Green >= 0.9, orange 0.6-0.9, red < 0.6; blue when no confidence is known."""
    if confidence is None:
        return NO_CONFIDENCE_COLOUR
    return next(colour for lowest, colour, _ in CONFIDENCE_BANDS if confidence >= lowest)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """Grey, RGB or RGBA input (uint8, or floats in [0, 1]) -> an RGB uint8 copy."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"overlay: expected the input image as a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)) or min(image.shape[:2]) < 1:
        raise ValueError(f"overlay: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.dtype != np.uint8:
        if not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"overlay: expected uint8 pixels or floats in [0, 1], got {image.dtype}")
        image = np.clip(np.nan_to_num(image) * 255 + 0.5, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _check_confidences(confidences: Sequence[float] | None, count: int) -> list[float | None]:
    if confidences is None:
        return [None] * count
    confidences = list(confidences)
    if len(confidences) != count:
        raise ValueError(f"overlay: {len(confidences)} confidences for {count} primitives")
    for i, value in enumerate(confidences):
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"overlay: confidence {i} is {value!r}, expected a number in [0, 1]")
    return [float(c) for c in confidences]


def _label_anchor(primitive: Primitive) -> tuple[float, float]:
    """Where a primitive's label goes, in mm: above its top edge, its middle, or its first point."""
    if isinstance(primitive, Rectangle):
        return (primitive.x + primitive.width / 2, max(primitive.y, primitive.y + primitive.height))
    if isinstance(primitive, Circle):
        return (primitive.x, primitive.y + abs(primitive.radius))
    if isinstance(primitive, Arc):
        middle = math.radians(primitive.start_angle + arc_sweep(primitive) / 2)
        return (primitive.x + abs(primitive.radius) * math.cos(middle),
                primitive.y + abs(primitive.radius) * math.sin(middle))
    if isinstance(primitive, Line):
        return ((primitive.x1 + primitive.x2) / 2, (primitive.y1 + primitive.y2) / 2)
    return max(primitive.points, key=lambda p: p[1]) if primitive.points else (0.0, 0.0)


def _label_text(primitive: Primitive, confidence: float | None) -> str:
    text = size_label(primitive)
    return text if confidence is None else f"{text}  {round(100 * confidence)}%"


def _darker(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Label text colour: the band colour, darkened to read on a white box."""
    return tuple(int(c * 0.7) for c in colour)


@dataclasses.dataclass(frozen=True)
class _Box:
    """A box in pixels: left, top, width, height."""

    left: float
    top: float
    width: float
    height: float

    def clamped(self, picture_size: tuple[int, int]) -> "_Box":
        left = max(0.0, min(self.left, picture_size[0] - self.width))
        top = max(0.0, min(self.top, picture_size[1] - self.height))
        return _Box(left, top, self.width, self.height)

    def overlap(self, other: "_Box") -> float:
        dx = min(self.left + self.width, other.left + other.width) - max(self.left, other.left)
        dy = min(self.top + self.height, other.top + other.height) - max(self.top, other.top)
        return max(0.0, dx) * max(0.0, dy)

    def ink(self, busy: np.ndarray) -> int:
        """How many busy pixels (strokes, the input's own drawing) the box would hide."""
        left, top = int(self.left), int(self.top)
        return int(busy[top:int(math.ceil(self.top + self.height)), left:int(math.ceil(self.left + self.width))].sum())


@dataclasses.dataclass(frozen=True)
class _OverlayLabel:
    box: _Box
    text: str
    colour: tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class _OverlayPlan:
    """Everything the PNG and SVG overlays draw, in pixels, laid out once."""

    stroke_px: int
    font_px: int
    colours: list[tuple[int, int, int]]
    labels: list[_OverlayLabel]
    legend: _Box | None
    legend_rows: list[tuple[str, tuple[int, int, int]]]

    @property
    def legend_row_height(self) -> float:
        return self.font_px * 1.4


def _text_px(text: str, font_px: float) -> float:
    return text_width(text, font_px * CAP_HEIGHT_PER_EM)


def _best_box(candidates: list[_Box], busy: np.ndarray, taken: list[_Box]) -> _Box:
    """The candidate hiding the fewest busy pixels, never one overlapping a placed box if avoidable."""
    def cost(box: _Box) -> tuple[float, int]:
        return (sum(box.overlap(other) for other in taken), box.ink(busy))
    return min(candidates, key=cost)  # min keeps the first of equal costs: the preferred position


def _plan_overlay(rgb: np.ndarray, primitives: list[Primitive], confidences: list[float | None],
                  to_px: PixelMap) -> _OverlayPlan:
    long_px = max(rgb.shape[:2])
    stroke_px = max(3, round(0.004 * long_px))  # OpenCV anti-aliasing leaves 2 px lines faint
    font_px = max(11, round(0.022 * long_px))
    size = (to_px.width_px, to_px.height_px)
    colours = [confidence_colour(c) for c in confidences]
    # Busy pixels: the input's dark ink and the strokes about to be drawn; labels and legend avoid them.
    busy = (rgb.min(axis=2) < 128).astype(np.uint8)
    for primitive in primitives:
        points, closed = primitive_polyline(primitive, 0.5 / to_px.scale)
        draw_path(busy, [to_px(p) for p in points], closed, 1, stroke_px + 2)
    taken: list[_Box] = []
    rows = ([] if not confidences or confidences[0] is None
            else [(f"confidence {text}", colour) for _, colour, text in CONFIDENCE_BANDS])
    legend = None
    if rows:
        width = max(_text_px(t, font_px) for t, _ in rows) + font_px * 2.2
        height = font_px * 1.4 * len(rows) + font_px * 0.4
        margin = font_px * 0.5
        corners = [_Box(left, top, width, height)
                   for top in (margin, size[1] - height - margin) for left in (margin, size[0] - width - margin)]
        legend = _best_box([c.clamped(size) for c in corners], busy, [])
        taken.append(legend)
    labels = []
    for primitive, confidence, colour in zip(primitives, confidences, colours):
        text = _label_text(primitive, confidence)
        width, height, gap = _text_px(text, font_px) + font_px * 0.6, font_px * 1.3, font_px * 0.3
        u, v = to_px(_label_anchor(primitive))
        candidates = [_Box(u - width / 2, v - height - gap, width, height),   # above
                      _Box(u - width / 2, v + gap, width, height),            # below
                      _Box(u + gap, v - height / 2, width, height),           # right
                      _Box(u - width - gap, v - height / 2, width, height)]   # left
        box = _best_box([c.clamped(size) for c in candidates], busy, taken)
        taken.append(box)
        labels.append(_OverlayLabel(box, text, colour))
    return _OverlayPlan(stroke_px, font_px, colours, labels, legend, rows)


def _overlay_png(rgb: np.ndarray, primitives: list[Primitive], to_px: PixelMap, plan: _OverlayPlan) -> bytes:
    layer = rgb.copy()
    for primitive, colour in zip(primitives, plan.colours):
        points, closed = primitive_polyline(primitive, 0.25 / to_px.scale)
        draw_path(layer, [to_px(p) for p in points], closed, colour, plan.stroke_px)
    # Only pixels under a stroke differ between layer and input: elsewhere the blend is the input.
    blended = cv2.addWeighted(layer, OVERLAY_OPACITY, rgb, 1 - OVERLAY_OPACITY, 0)
    picture = Image.fromarray(blended).convert("RGBA")
    boxes = Image.new("RGBA", picture.size, (0, 0, 0, 0))
    draw_boxes = ImageDraw.Draw(boxes)
    texts: list[tuple[tuple[float, float], str, tuple[int, int, int], str]] = []
    f = plan.font_px
    for label in plan.labels:
        b = label.box
        draw_boxes.rounded_rectangle((b.left, b.top, b.left + b.width, b.top + b.height), radius=f * 0.25,
                                     fill=(255, 255, 255, 200), outline=(*label.colour, 255))
        texts.append(((b.left + b.width / 2, b.top + b.height / 2), label.text, _darker(label.colour), "mm"))
    if plan.legend is not None:
        b, row_h = plan.legend, plan.legend_row_height
        draw_boxes.rectangle((b.left, b.top, b.left + b.width, b.top + b.height),
                             fill=(255, 255, 255, 215), outline=(90, 90, 90, 255))
        for i, (text, colour) in enumerate(plan.legend_rows):
            y = b.top + f * 0.2 + row_h * i
            draw_boxes.rectangle((b.left + f * 0.4, y + row_h * 0.25, b.left + f * 1.3, y + row_h * 0.75),
                                 fill=(*colour, 255))
            texts.append(((b.left + f * 1.6, y + row_h / 2), text, (30, 30, 30), "lm"))
    picture = Image.alpha_composite(picture, boxes)
    draw, font = ImageDraw.Draw(picture), label_font(f)
    for (u, v), text, colour, anchor in texts:
        draw.text((u, v), text, fill=colour, font=font, anchor=anchor)
    return png_bytes(picture.convert("RGB"))


def _overlay_svg(rgb: np.ndarray, primitives: list[Primitive], confidences: list[float | None], sheet: Sheet,
                 to_px: PixelMap, plan: _OverlayPlan) -> bytes:
    # The SVG's user units are sheet mm (like render_program's); pixel sizes convert with `mm`.
    mm_x, mm_y = sheet.width / to_px.width_px, sheet.height / to_px.height_px
    mm = 1 / to_px.scale
    f = plan.font_px
    encoded = base64.b64encode(png_bytes(Image.fromarray(rgb))).decode("ascii")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             svg_open(sheet, str(to_px.width_px), str(to_px.height_px)),
             f'<image x="0" y="0" width="{svg_number(sheet.width)}" height="{svg_number(sheet.height)}" '
             f'preserveAspectRatio="none" href="data:image/png;base64,{encoded}"/>',
             f'<g id="geometry" fill="none" stroke-width="{svg_number(plan.stroke_px * mm)}" '
             f'stroke-opacity="{OVERLAY_OPACITY}" stroke-linecap="round" stroke-linejoin="round">']
    for i, (primitive, confidence, colour) in enumerate(zip(primitives, confidences, plan.colours)):
        extra = f' data-index="{i}" stroke="{svg_colour(colour)}"'
        if confidence is not None:
            extra += f' data-confidence="{svg_number(confidence)}"'
        lines.append(svg_shape(primitive, sheet, extra))
    lines.append("</g>")

    def rect(b: _Box, attributes: str) -> str:
        return (f'<rect x="{svg_number(b.left * mm_x)}" y="{svg_number(b.top * mm_y)}" '
                f'width="{svg_number(b.width * mm_x)}" '
                f'height="{svg_number(b.height * mm_y)}" {attributes}/>')

    lines.append(f'<g id="labels" font-family="{SVG_FONT}" font-size="{svg_number(f * mm)}">')
    for label in plan.labels:
        b = label.box
        lines.append(rect(b, f'rx="{svg_number(f * 0.25 * mm)}" fill="white" fill-opacity="0.8" '
                             f'stroke="{svg_colour(label.colour)}" stroke-width="{svg_number(mm)}"'))
        lines.append(f'<text x="{svg_number((b.left + b.width / 2) * mm_x)}" '
                     f'y="{svg_number((b.top + b.height / 2) * mm_y)}" '
                     f'text-anchor="middle" dominant-baseline="central" fill="{svg_colour(_darker(label.colour))}" '
                     f'xml:space="preserve">{escape(label.text)}</text>')
    lines.append("</g>")
    if plan.legend is not None:
        b, row_h = plan.legend, plan.legend_row_height
        lines.append(f'<g id="legend" font-family="{SVG_FONT}" font-size="{svg_number(f * mm)}">')
        lines.append(rect(b, f'fill="white" fill-opacity="0.85" stroke="#5a5a5a" stroke-width="{svg_number(mm)}"'))
        for i, (text, colour) in enumerate(plan.legend_rows):
            y = b.top + f * 0.2 + row_h * i
            swatch = _Box(b.left + f * 0.4, y + row_h * 0.25, f * 0.9, row_h * 0.5)
            lines.append(rect(swatch, f'fill="{svg_colour(colour)}"'))
            lines.append(f'<text x="{svg_number((b.left + f * 1.6) * mm_x)}" y="{svg_number((y + row_h / 2) * mm_y)}" '
                         f'dominant-baseline="central" fill="#1e1e1e">{escape(text)}</text>')
        lines.append("</g>")
    lines.append("</svg>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def overlay(image: np.ndarray, primitives: Iterable[Primitive], sheet: Sheet,
            confidences: Sequence[float] | None = None, fmt: str = "png") -> bytes:
    """The recognised primitives drawn over the input image (RGB or grey array spanning the sheet
    exactly), at the input's pixel size: semi-transparent strokes coloured by confidence (green >= 0.9,
    orange 0.6-0.9, red < 0.6, with a legend; blue when no confidences), each with a label of its
    values (`40 × 20`, `Ø25`, `R12.5`). SVG embeds the input as a base64 PNG under vector shapes.
    """
    fmt = check_format(fmt)
    rgb = _as_rgb(image)
    primitives = list(primitives)
    confidences_checked = _check_confidences(confidences, len(primitives))
    to_px = PixelMap(sheet, rgb.shape[1], rgb.shape[0])
    plan = _plan_overlay(rgb, primitives, confidences_checked, to_px)
    if fmt == "svg":
        return _overlay_svg(rgb, primitives, confidences_checked, sheet, to_px, plan)
    return _overlay_png(rgb, primitives, to_px, plan)


__all__ = ["render_program", "overlay", "confidence_colour", "FORMATS"]
