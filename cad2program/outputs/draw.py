"""Programs drawn back as pictures: a clean annotated drawing (`render_program`), as PNG or SVG bytes,
and the drawing helpers the overlay of recognised primitives (`outputs.overlay`) shares.

Both work in sheet millimetres (origin bottom-left, y up) and map to the picture's pixels
(y down) only at the end, so the PNG and the SVG of one program show the same thing. Pure
functions: arrays and primitives in, file bytes out.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from typing import Iterable
from xml.sax.saxutils import escape

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cad2program.contract.geometry import arc_sweep, primitive_polyline
from cad2program.outputs.scene import CAP_HEIGHT_PER_EM, Arrow, Label, Stroke, dimension_items
from cad2program.contract.program import Arc, Circle, Line, Primitive, Rectangle, Sheet

FORMATS = ("png", "svg")
# Line weights as a share of the sheet's longer side: 0.5 mm and 0.25 mm on a 200 mm sheet, the
# ISO pair of thick (object) and thin (dimension) lines.
GEOMETRY_WEIGHT = 0.0025
DIMENSION_WEIGHT = 0.00125
INK = (0, 0, 0)
DIMENSION_INK = (20, 60, 150)
SHEET_EDGE = (205, 205, 205)
SVG_FONT = "DejaVu Sans, Arial, Helvetica, sans-serif"
_FONT_FILES = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf")
# Pillow's anchor "mm" centres on (ascender + descender) / 2; digits sit this much of a font size higher.
_DIGIT_RAISE_PER_EM = 0.12


def check_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"unknown picture format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return fmt


# ----------------------------------------------------------------------------------------------
# Raster backend (OpenCV for anti-aliased lines, Pillow for text)
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def label_font(size_px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """A sans font with Ø and ×: DejaVu Sans where installed (install.sh), else Pillow's own."""
    for name in _FONT_FILES:
        try:
            return ImageFont.truetype(name, size_px)
        except OSError:
            continue
    return ImageFont.load_default(size=size_px)


@dataclasses.dataclass(frozen=True)
class PixelMap:
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


def draw_path(canvas: np.ndarray, points_px: list[tuple[float, float]], closed: bool,
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


def _draw_arrow(canvas: np.ndarray, arrow: Arrow, to_px: PixelMap, colour: tuple[int, int, int]) -> None:
    polygon = _fixed(to_px(p) for p in _arrow_polygon(arrow))
    cv2.fillPoly(canvas, [polygon], colour, cv2.LINE_AA, _SHIFT)


def _draw_label(picture: Image.Image, label: Label, to_px: PixelMap, colour: tuple[int, int, int]) -> None:
    size = max(6, round(label.height * to_px.scale / CAP_HEIGHT_PER_EM))
    font = label_font(size)
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


def png_bytes(picture: Image.Image) -> bytes:
    stream = io.BytesIO()
    picture.save(stream, format="PNG", optimize=True)
    return stream.getvalue()


def _render_png(primitives: list[Primitive], sheet: Sheet, px_long_side: int, annotate: bool) -> bytes:
    scale = px_long_side / sheet.longer_side
    to_px = PixelMap(sheet, max(1, round(sheet.width * scale)), max(1, round(sheet.height * scale)))
    canvas = np.full((to_px.height_px, to_px.width_px, 3), 255, np.uint8)
    cv2.rectangle(canvas, (0, 0), (to_px.width_px - 1, to_px.height_px - 1), SHEET_EDGE, 1)
    thick = max(1, round(GEOMETRY_WEIGHT * sheet.longer_side * scale))
    thin = max(1, round(DIMENSION_WEIGHT * sheet.longer_side * scale))
    chord = 0.25 / scale  # a quarter pixel, in mm
    for primitive in primitives:
        points, closed = primitive_polyline(primitive, chord)
        draw_path(canvas, [to_px(p) for p in points], closed, INK, thick)
    labels = []
    if annotate:
        for item in dimension_items(primitives, sheet):
            if isinstance(item, Stroke):
                draw_path(canvas, [to_px(p) for p in item.points], False, DIMENSION_INK, thin)
            elif isinstance(item, Arrow):
                _draw_arrow(canvas, item, to_px, DIMENSION_INK)
            else:
                labels.append(item)
    picture = Image.fromarray(canvas)
    for label in labels:
        _draw_label(picture, label, to_px, DIMENSION_INK)
    return png_bytes(picture)


# ----------------------------------------------------------------------------------------------
# SVG backend (text written directly; viewBox in sheet mm, y flipped)
# ----------------------------------------------------------------------------------------------


def svg_number(value: float) -> str:
    """A short SVG number: 3 decimals (1 micron) at most, no trailing zeros."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _svg_point(sheet: Sheet, point: tuple[float, float]) -> str:
    return f"{svg_number(point[0])},{svg_number(sheet.height - point[1])}"


def svg_shape(primitive: Primitive, sheet: Sheet, attributes: str = "") -> str:
    """One SVG element for one primitive: line, rect, circle, path (arc), polyline or polygon."""
    flip = sheet.height
    tag = f'data-type="{primitive.TYPE}"{attributes}'
    if isinstance(primitive, Line):
        return (f'<line x1="{svg_number(primitive.x1)}" y1="{svg_number(flip - primitive.y1)}" '
                f'x2="{svg_number(primitive.x2)}" y2="{svg_number(flip - primitive.y2)}" {tag}/>')
    if isinstance(primitive, Rectangle):
        x, w = min(primitive.x, primitive.x + primitive.width), abs(primitive.width)
        top, h = max(primitive.y, primitive.y + primitive.height), abs(primitive.height)
        return (f'<rect x="{svg_number(x)}" y="{svg_number(flip - top)}" width="{svg_number(w)}" '
                f'height="{svg_number(h)}" {tag}/>')
    if isinstance(primitive, Circle):
        return (f'<circle cx="{svg_number(primitive.x)}" cy="{svg_number(flip - primitive.y)}" '
                f'r="{svg_number(abs(primitive.radius))}" {tag}/>')
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
        return (f"M{at(arc.start_angle)} A{svg_number(radius)},{svg_number(radius)} 0 0 0 {at(middle)} "
                f"A{svg_number(radius)},{svg_number(radius)} 0 0 0 {at(arc.start_angle)}")
    large = 1 if sweep > 180 else 0
    return (f"M{at(arc.start_angle)} A{svg_number(radius)},{svg_number(radius)} 0 {large} 0 "
            f"{at(arc.start_angle + sweep)}")


def svg_colour(colour: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _svg_label(label: Label, sheet: Sheet, extra: str = "") -> str:
    u, v = label.centre[0], sheet.height - label.centre[1]
    font_size = label.height / CAP_HEIGHT_PER_EM
    rotate = (f' transform="rotate({svg_number(-label.rotation)} {svg_number(u)} {svg_number(v)})"'
              if label.rotation else "")
    return (f'<text x="{svg_number(u)}" y="{svg_number(v)}" font-size="{svg_number(font_size)}" text-anchor="middle" '
            f'dominant-baseline="central"{rotate}{extra}>{escape(label.text)}</text>')


def _svg_dimensions(primitives: list[Primitive], sheet: Sheet, weight: float) -> list[str]:
    colour = svg_colour(DIMENSION_INK)
    lines = [f'<g id="dimensions" stroke="{colour}" stroke-width="{svg_number(weight)}" fill="none" '
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


def svg_open(sheet: Sheet, width: str, height: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="{width}" height="{height}" viewBox="0 0 {svg_number(sheet.width)} {svg_number(sheet.height)}">')


def _render_svg(primitives: list[Primitive], sheet: Sheet, annotate: bool) -> bytes:
    thick, thin = GEOMETRY_WEIGHT * sheet.longer_side, DIMENSION_WEIGHT * sheet.longer_side
    # Width and height in mm: the SVG prints at true scale.
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             svg_open(sheet, f"{svg_number(sheet.width)}mm", f"{svg_number(sheet.height)}mm"),
             f'<rect id="sheet" x="0" y="0" width="{svg_number(sheet.width)}" height="{svg_number(sheet.height)}" '
             f'fill="white" stroke="{svg_colour(SHEET_EDGE)}" stroke-width="{svg_number(thin)}"/>',
             f'<g id="geometry" fill="none" stroke="{svg_colour(INK)}" stroke-width="{svg_number(thick)}" '
             f'stroke-linecap="round" stroke-linejoin="round">']
    lines += [svg_shape(p, sheet, f' data-index="{i}"') for i, p in enumerate(primitives)]
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
    fmt = check_format(fmt)
    primitives = list(primitives)
    if fmt == "svg":
        return _render_svg(primitives, sheet, annotate)
    if not isinstance(px_long_side, int) or isinstance(px_long_side, bool) or not 16 <= px_long_side <= 16384:
        raise ValueError(f"px_long_side must be a whole number of pixels from 16 to 16384, got {px_long_side!r}")
    return _render_png(primitives, sheet, px_long_side, annotate)
