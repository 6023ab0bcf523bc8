"""Programs drawn back as pictures: a clean annotated drawing (`render_program`) and the recognised
primitives laid over the input image (`overlay`), each as PNG or SVG bytes.

Both work in sheet millimetres (origin bottom-left, y up) and map to the picture's pixels
(y down) only at the end, so the PNG and the SVG of one program show the same thing. Pure
functions: arrays and primitives in, file bytes out.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import io
import math
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cad2program.contract.geometry import arc_sweep, primitive_polyline
from cad2program.outputs.scene import CAP_HEIGHT_PER_EM, Arrow, Label, Stroke, dimension_items, size_label, text_width
from cad2program.contract.program import Arc, Circle, Line, Primitive, Rectangle, Sheet

FORMATS = ("png", "svg")
# Line weights as a share of the sheet's longer side: 0.5 mm and 0.25 mm on a 200 mm sheet, the
# ISO pair of thick (object) and thin (dimension) lines.
GEOMETRY_WEIGHT = 0.0025
DIMENSION_WEIGHT = 0.00125
INK = (0, 0, 0)
DIMENSION_INK = (20, 60, 150)
SHEET_EDGE = (205, 205, 205)
# Confidence bands of the overlay, best first: (lowest confidence, colour, legend text).
CONFIDENCE_BANDS = ((0.9, (0, 170, 60), "≥ 0.9"), (0.6, (245, 140, 0), "0.6 – 0.9"),
                    (-math.inf, (225, 30, 30), "< 0.6"))
NO_CONFIDENCE_COLOUR = (20, 110, 240)
OVERLAY_OPACITY = 0.75
SVG_FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
_FONT_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf")
# Pillow's anchor "mm" centres on (ascender + descender) / 2; digits sit this much of a font size higher.
_DIGIT_RAISE_PER_EM = 0.12


def _check_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


# ----------------------------------------------------------------------------------------------
# Raster backend (OpenCV for anti-aliased lines, Pillow for text)
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A sans font with Ø and ×: DejaVu Sans where installed (install.sh), else Pillow's own."""
    for name in _FONT_FILES:
        try:
            return ImageFont.truetype(name, size_px)
        except OSError:
            continue
    return ImageFont.load_default(size=size_px)


@dataclasses.dataclass(frozen=True)
class _PixelMap:
    """Sheet mm (y up) -> pixel coordinates (y down) of a picture that spans the sheet exactly."""

    sheet: Sheet
    width_px: int
    height_px: int

    @property
    def scale(self) -> float:
        """Pixels per mm (the two axes agree up to rounding of the picture's size)."""
        return math.sqrt(self.width_px / self.sheet.width * self.height_px / self.sheet.height)

    def __call__(self, point: tuple[float, float]) -> tuple[float, float]:
        x, y = point
        return (x * self.width_px / self.sheet.width, (self.sheet.height - y) * self.height_px / self.sheet.height)


_SHIFT = 4  # OpenCV fixed-point bits: sub-pixel positions for smooth anti-aliased lines


def _fixed(points_px: Iterable[tuple[float, float]]) -> np.ndarray:
    # OpenCV puts integer coordinates on pixel centres; the picture's grid has them at +0.5.
    return np.array([[round((u - 0.5) * (1 << _SHIFT)), round((v - 0.5) * (1 << _SHIFT))]
                     for u, v in points_px], dtype=np.int32)


def _draw_path(canvas: np.ndarray, points_px: list[tuple[float, float]], closed: bool,
               colour: tuple[int, int, int], thickness: int) -> None:
    if len(points_px) >= 2:
        cv2.polylines(canvas, [_fixed(points_px)], closed, colour, thickness, cv2.LINE_AA, _SHIFT)
    elif points_px:
        u, v = points_px[0]
        cv2.circle(canvas, (round(u - 0.5), round(v - 0.5)), thickness, colour, -1, cv2.LINE_AA)


def _arrow_polygon(arrow: Arrow) -> list[tuple[float, float]]:
    """The arrow head as a triangle in mm: tip, then the two barbs (about 18 degrees wide)."""
    (tx, ty), (dx, dy) = arrow.tip, arrow.direction
    base_x, base_y = tx - dx * arrow.length, ty - dy * arrow.length
    half = arrow.length / 6
    return [(tx, ty), (base_x - dy * half, base_y + dx * half), (base_x + dy * half, base_y - dx * half)]


def _draw_arrow(canvas: np.ndarray, arrow: Arrow, to_px: _PixelMap, colour: tuple[int, int, int]) -> None:
    polygon = _fixed(to_px(p) for p in _arrow_polygon(arrow))
    cv2.fillPoly(canvas, [polygon], colour, cv2.LINE_AA, _SHIFT)


def _draw_label(picture: Image.Image, label: Label, to_px: _PixelMap, colour: tuple[int, int, int]) -> None:
    size = max(6, round(label.height * to_px.scale / CAP_HEIGHT_PER_EM))
    font = _font(size)
    u, v = to_px(label.centre)
    if label.rotation == 0:
        ImageDraw.Draw(picture).text((u, v - _DIGIT_RAISE_PER_EM * size), label.text, fill=colour,
                                     font=font, anchor="mm")
        return
    # Rotated text: draw it level on a transparent patch, turn the patch, paste it centred.
    left, top, right, bottom = font.getbbox(label.text, anchor="mm")
    pad = 2
    patch = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    ImageDraw.Draw(patch).text((pad - left, pad - top - _DIGIT_RAISE_PER_EM * size), label.text,
                               fill=(*colour, 255), font=font, anchor="mm")
    patch = patch.rotate(label.rotation, expand=True, resample=Image.BICUBIC)
    picture.paste(patch, (round(u - patch.width / 2), round(v - patch.height / 2)), patch)


def _png_bytes(picture: Image.Image) -> bytes:
    stream = io.BytesIO()
    picture.save(stream, format="PNG", optimize=True)
    return stream.getvalue()


def _render_png(primitives: list[Primitive], sheet: Sheet, px_long_side: int, annotate: bool) -> bytes:
    scale = px_long_side / sheet.longer_side
    to_px = _PixelMap(sheet, max(1, round(sheet.width * scale)), max(1, round(sheet.height * scale)))
    canvas = np.full((to_px.height_px, to_px.width_px, 3), 255, np.uint8)
    cv2.rectangle(canvas, (0, 0), (to_px.width_px - 1, to_px.height_px - 1), SHEET_EDGE, 1)
    thick = max(1, round(GEOMETRY_WEIGHT * sheet.longer_side * scale))
    thin = max(1, round(DIMENSION_WEIGHT * sheet.longer_side * scale))
    chord = 0.25 / scale  # a quarter pixel, in mm
    for primitive in primitives:
        points, closed = primitive_polyline(primitive, chord)
        _draw_path(canvas, [to_px(p) for p in points], closed, INK, thick)
    labels = []
    if annotate:
        for item in dimension_items(primitives, sheet):
            if isinstance(item, Stroke):
                _draw_path(canvas, [to_px(p) for p in item.points], False, DIMENSION_INK, thin)
            elif isinstance(item, Arrow):
                _draw_arrow(canvas, item, to_px, DIMENSION_INK)
            else:
                labels.append(item)
    picture = Image.fromarray(canvas)
    for label in labels:
        _draw_label(picture, label, to_px, DIMENSION_INK)
    return _png_bytes(picture)


# ----------------------------------------------------------------------------------------------
# SVG backend (text written directly; viewBox in sheet mm, y flipped)
# ----------------------------------------------------------------------------------------------


def _num(value: float) -> str:
    """A short SVG number: 3 decimals (1 micron) at most, no trailing zeros."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _svg_point(sheet: Sheet, point: tuple[float, float]) -> str:
    return f"{_num(point[0])},{_num(sheet.height - point[1])}"


def _svg_shape(primitive: Primitive, sheet: Sheet, attributes: str = "") -> str:
    """One SVG element for one primitive: line, rect, circle, path (arc), polyline or polygon."""
    flip = sheet.height
    tag = f'data-type="{primitive.TYPE}"{attributes}'
    if isinstance(primitive, Line):
        return (f'<line x1="{_num(primitive.x1)}" y1="{_num(flip - primitive.y1)}" '
                f'x2="{_num(primitive.x2)}" y2="{_num(flip - primitive.y2)}" {tag}/>')
    if isinstance(primitive, Rectangle):
        x, w = min(primitive.x, primitive.x + primitive.width), abs(primitive.width)
        top, h = max(primitive.y, primitive.y + primitive.height), abs(primitive.height)
        return f'<rect x="{_num(x)}" y="{_num(flip - top)}" width="{_num(w)}" height="{_num(h)}" {tag}/>'
    if isinstance(primitive, Circle):
        return (f'<circle cx="{_num(primitive.x)}" cy="{_num(flip - primitive.y)}" '
                f'r="{_num(abs(primitive.radius))}" {tag}/>')
    if isinstance(primitive, Arc):
        return f'<path d="{_svg_arc_path(primitive, sheet)}" {tag}/>'
    points = " ".join(_svg_point(sheet, p) for p in primitive.points)
    element = "polygon" if primitive.closed else "polyline"
    return f'<{element} points="{points}" {tag}/>'


def _svg_arc_path(arc: Arc, sheet: Sheet) -> str:
    radius = abs(arc.radius)
    sweep = arc_sweep(arc)

    def at(degrees: float) -> str:
        return _svg_point(sheet, (arc.x + radius * math.cos(math.radians(degrees)),
                                  arc.y + radius * math.sin(math.radians(degrees))))

    # Counter-clockwise on the sheet is counter-clockwise on screen too: SVG sweep-flag 0.
    # A 360-degree sweep has equal end points, which SVG cannot draw as one arc: split it.
    if sweep >= 360:
        middle = arc.start_angle + 180
        return (f"M{at(arc.start_angle)} A{_num(radius)},{_num(radius)} 0 0 0 {at(middle)} "
                f"A{_num(radius)},{_num(radius)} 0 0 0 {at(arc.start_angle)}")
    large = 1 if sweep > 180 else 0
    return f"M{at(arc.start_angle)} A{_num(radius)},{_num(radius)} 0 {large} 0 {at(arc.start_angle + sweep)}"


def _rgb(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _svg_label(label: Label, sheet: Sheet, extra: str = "") -> str:
    u, v = label.centre[0], sheet.height - label.centre[1]
    font_size = label.height / CAP_HEIGHT_PER_EM
    rotate = f' transform="rotate({_num(-label.rotation)} {_num(u)} {_num(v)})"' if label.rotation else ""
    return (f'<text x="{_num(u)}" y="{_num(v)}" font-size="{_num(font_size)}" text-anchor="middle" '
            f'dominant-baseline="central"{rotate}{extra}>{escape(label.text)}</text>')


def _svg_dimensions(primitives: list[Primitive], sheet: Sheet, weight: float) -> list[str]:
    colour = _rgb(DIMENSION_INK)
    lines = [f'<g id="dimensions" stroke="{colour}" stroke-width="{_num(weight)}" fill="none" '
             f'font-family="{SVG_FONT}">']
    for item in dimension_items(primitives, sheet):
        if isinstance(item, Stroke):
            points = " ".join(_svg_point(sheet, p) for p in item.points)
            lines.append(f'<polyline points="{points}"/>')
        elif isinstance(item, Arrow):
            points = " ".join(_svg_point(sheet, p) for p in _arrow_polygon(item))
            lines.append(f'<polygon points="{points}" fill="{colour}" stroke="none"/>')
        else:
            lines.append(_svg_label(item, sheet, f' fill="{colour}" stroke="none"'))
    lines.append("</g>")
    return lines


def _svg_open(sheet: Sheet, width: str, height: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width}" height="{height}" viewBox="0 0 {_num(sheet.width)} {_num(sheet.height)}">')


def _render_svg(primitives: list[Primitive], sheet: Sheet, annotate: bool) -> bytes:
    thick, thin = GEOMETRY_WEIGHT * sheet.longer_side, DIMENSION_WEIGHT * sheet.longer_side
    # Width and height in mm: the SVG prints at true scale.
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             _svg_open(sheet, f"{_num(sheet.width)}mm", f"{_num(sheet.height)}mm"),
             f'<rect id="sheet" x="0" y="0" width="{_num(sheet.width)}" height="{_num(sheet.height)}" '
             f'fill="white" stroke="{_rgb(SHEET_EDGE)}" stroke-width="{_num(thin)}"/>',
             f'<g id="geometry" fill="none" stroke="{_rgb(INK)}" stroke-width="{_num(thick)}" '
             f'stroke-linecap="round" stroke-linejoin="round">']
    lines += [_svg_shape(p, sheet, f' data-index="{i}"') for i, p in enumerate(primitives)]
    lines.append("</g>")
    if annotate:
        lines += _svg_dimensions(primitives, sheet, thin)
    lines.append("</svg>")
    return ("\n".join(lines) + "\n").encode("utf-8")


# ----------------------------------------------------------------------------------------------
# Public: the program as a drawing
# ----------------------------------------------------------------------------------------------


def render_program(primitives: Iterable[Primitive], sheet: Sheet, px_long_side: int = 1024, fmt: str = "png",
                   annotate: bool = True) -> bytes:
    """The program drawn on its sheet: white paper, black geometry, sizes dimensioned like a drawing
    (rectangle width and height, `Ø` diameters, `R` radii) when `annotate`.

    PNG: `px_long_side` pixels along the sheet's longer side. SVG: viewBox in mm, sized in mm so it
    prints at true scale (`px_long_side` is not used).
    """
    fmt = _check_format(fmt)
    primitives = list(primitives)
    if fmt == "svg":
        return _render_svg(primitives, sheet, annotate)
    if not isinstance(px_long_side, int) or isinstance(px_long_side, bool) or not 16 <= px_long_side <= 16384:
        raise ValueError(f"px_long_side must be a whole number of pixels from 16 to 16384, got {px_long_side!r}")
    return _render_png(primitives, sheet, px_long_side, annotate)


# ----------------------------------------------------------------------------------------------
# Public: recognised primitives over the input
# ----------------------------------------------------------------------------------------------


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
                  to_px: _PixelMap) -> _OverlayPlan:
    long_px = max(rgb.shape[:2])
    stroke_px = max(3, round(0.004 * long_px))  # OpenCV anti-aliasing leaves 2 px lines faint
    font_px = max(11, round(0.022 * long_px))
    size = (to_px.width_px, to_px.height_px)
    colours = [confidence_colour(c) for c in confidences]
    # Busy pixels: the input's dark ink and the strokes about to be drawn; labels and legend avoid them.
    busy = (rgb.min(axis=2) < 128).astype(np.uint8)
    for primitive in primitives:
        points, closed = primitive_polyline(primitive, 0.5 / to_px.scale)
        _draw_path(busy, [to_px(p) for p in points], closed, 1, stroke_px + 2)
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


def _overlay_png(rgb: np.ndarray, primitives: list[Primitive], to_px: _PixelMap, plan: _OverlayPlan) -> bytes:
    layer = rgb.copy()
    for primitive, colour in zip(primitives, plan.colours):
        points, closed = primitive_polyline(primitive, 0.25 / to_px.scale)
        _draw_path(layer, [to_px(p) for p in points], closed, colour, plan.stroke_px)
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
    draw, font = ImageDraw.Draw(picture), _font(f)
    for (u, v), text, colour, anchor in texts:
        draw.text((u, v), text, fill=colour, font=font, anchor=anchor)
    return _png_bytes(picture.convert("RGB"))


def _overlay_svg(rgb: np.ndarray, primitives: list[Primitive], confidences: list[float | None], sheet: Sheet,
                 to_px: _PixelMap, plan: _OverlayPlan) -> bytes:
    # The SVG's user units are sheet mm (like render_program's); pixel sizes convert with `mm`.
    mm_x, mm_y = sheet.width / to_px.width_px, sheet.height / to_px.height_px
    mm = 1 / to_px.scale
    f = plan.font_px
    encoded = base64.b64encode(_png_bytes(Image.fromarray(rgb))).decode("ascii")
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             _svg_open(sheet, str(to_px.width_px), str(to_px.height_px)),
             f'<image x="0" y="0" width="{_num(sheet.width)}" height="{_num(sheet.height)}" '
             f'preserveAspectRatio="none" href="data:image/png;base64,{encoded}"/>',
             f'<g id="geometry" fill="none" stroke-width="{_num(plan.stroke_px * mm)}" '
             f'stroke-opacity="{OVERLAY_OPACITY}" stroke-linecap="round" stroke-linejoin="round">']
    for i, (primitive, confidence, colour) in enumerate(zip(primitives, confidences, plan.colours)):
        extra = f' data-index="{i}" stroke="{_rgb(colour)}"'
        if confidence is not None:
            extra += f' data-confidence="{_num(confidence)}"'
        lines.append(_svg_shape(primitive, sheet, extra))
    lines.append("</g>")

    def rect(b: _Box, attributes: str) -> str:
        return (f'<rect x="{_num(b.left * mm_x)}" y="{_num(b.top * mm_y)}" width="{_num(b.width * mm_x)}" '
                f'height="{_num(b.height * mm_y)}" {attributes}/>')

    lines.append(f'<g id="labels" font-family="{SVG_FONT}" font-size="{_num(f * mm)}">')
    for label in plan.labels:
        b = label.box
        lines.append(rect(b, f'rx="{_num(f * 0.25 * mm)}" fill="white" fill-opacity="0.8" '
                             f'stroke="{_rgb(label.colour)}" stroke-width="{_num(mm)}"'))
        lines.append(f'<text x="{_num((b.left + b.width / 2) * mm_x)}" y="{_num((b.top + b.height / 2) * mm_y)}" '
                     f'text-anchor="middle" dominant-baseline="central" fill="{_rgb(_darker(label.colour))}" '
                     f'xml:space="preserve">{escape(label.text)}</text>')
    lines.append("</g>")
    if plan.legend is not None:
        b, row_h = plan.legend, plan.legend_row_height
        lines.append(f'<g id="legend" font-family="{SVG_FONT}" font-size="{_num(f * mm)}">')
        lines.append(rect(b, f'fill="white" fill-opacity="0.85" stroke="#5a5a5a" stroke-width="{_num(mm)}"'))
        for i, (text, colour) in enumerate(plan.legend_rows):
            y = b.top + f * 0.2 + row_h * i
            lines.append(rect(_Box(b.left + f * 0.4, y + row_h * 0.25, f * 0.9, row_h * 0.5), f'fill="{_rgb(colour)}"'))
            lines.append(f'<text x="{_num((b.left + f * 1.6) * mm_x)}" y="{_num((y + row_h / 2) * mm_y)}" '
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
    fmt = _check_format(fmt)
    rgb = _as_rgb(image)
    primitives = list(primitives)
    confidences_checked = _check_confidences(confidences, len(primitives))
    to_px = _PixelMap(sheet, rgb.shape[1], rgb.shape[0])
    plan = _plan_overlay(rgb, primitives, confidences_checked, to_px)
    if fmt == "svg":
        return _overlay_svg(rgb, primitives, confidences_checked, sheet, to_px, plan)
    return _overlay_png(rgb, primitives, to_px, plan)


__all__ = ["render_program", "overlay", "confidence_colour", "FORMATS"]
