"""Battery set `hand`: the battery's part programs drawn as a drafter sketches them, by hand.

    python3 scripts/battery/render_hand.py          # writes testsets/battery/hand/{dev,test}

An independently written stroke renderer (numpy + PIL, nothing of cad2program.synth): every stroke
is a pen path in millimetres that wobbles with low-frequency noise, varies its width and darkness
with pen pressure, tapers at its ends, overshoots corners and line ends a little, and is drawn at
twice the output resolution then halved (anti-aliasing). Circles are slightly elliptical, their ends
overlap or leave a small gap. Dimensions follow a drafter's habits: extension lines with a gap at the
part, freehand arrowheads (V, filled or oblique ticks), values hand-lettered in one of the system's
handwriting faces or in single-stroke letters of our own drawn with the same pen (two in five
drawings), each character jittered in size, slant and baseline; Ø and R leaders with a shoulder.
Centre lines and pitch circles are dash-dot, centre marks small crosses, hatching 45-degree strokes.
Wobble stays under 0.4% of the sheet's longer side, well inside the scoring tolerance (2%).
Seeds 23003xxxx; about 1000 px on the longer side, grey PNG.
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_parts_module, renderer_main, write_half  # noqa: E402

from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle  # noqa: E402

SET_NAME = "hand"
SEED_BASE = 23003
LONGER_SIDE_PX = 1000
SUPERSAMPLE = 2
# Handwriting faces from Debian's font packages that have a legible Ø (looked at one by one).
HAND_FONTS = ("/usr/share/fonts/truetype/fifthhorseman/dkg.ttf", "/usr/share/fonts/truetype/breip/Breip.ttf",
              "/usr/share/fonts/truetype/breip/breipfont.ttf",
              "/usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf",
              "/usr/share/fonts/opentype/comic-neue/ComicNeue-Light.otf")


def _oval(cx, cy, rx, ry, start=90, turn=360, n=16):
    return [(cx + rx * math.cos(math.radians(start + turn * i / n)), cy + ry * math.sin(math.radians(start + turn * i / n)))
            for i in range(n + 1)]


# Single-stroke lettering of our own, in a box 1 high (x right, y up): the drafter's own hand, no font.
STROKE_GLYPHS = {
    "0": [_oval(0.3, 0.5, 0.28, 0.5)],
    "1": [[(0.12, 0.78), (0.32, 1.0), (0.32, 0.0)]],
    "2": [[(0.04, 0.78), (0.14, 0.95), (0.34, 1.0), (0.54, 0.86), (0.52, 0.62), (0.0, 0.0), (0.6, 0.0)]],
    "3": [[(0.04, 0.9), (0.28, 1.0), (0.52, 0.86), (0.46, 0.62), (0.24, 0.55), (0.54, 0.42), (0.56, 0.16),
           (0.3, 0.0), (0.03, 0.1)]],
    "4": [[(0.46, 0.0), (0.46, 1.0), (0.0, 0.3), (0.62, 0.3)]],
    "5": [[(0.55, 1.0), (0.1, 1.0), (0.05, 0.56), (0.34, 0.63), (0.55, 0.46), (0.55, 0.15), (0.3, 0.0), (0.03, 0.1)]],
    "6": [[(0.5, 0.96), (0.26, 0.9), (0.06, 0.55), (0.05, 0.2), (0.3, 0.0), (0.55, 0.18), (0.52, 0.46), (0.27, 0.56),
           (0.06, 0.4)]],
    "7": [[(0.0, 1.0), (0.6, 1.0), (0.2, 0.0)]],
    "8": [[(0.3, 0.55), (0.07, 0.76), (0.3, 1.0), (0.53, 0.76), (0.3, 0.55), (0.02, 0.27), (0.3, 0.0), (0.58, 0.27),
           (0.3, 0.55)]],
    "9": [[(0.55, 0.62), (0.3, 0.45), (0.05, 0.66), (0.3, 1.0), (0.55, 0.8), (0.54, 0.4), (0.34, 0.0), (0.08, 0.05)]],
    ".": [[(0.08, 0.0), (0.11, 0.04)]],
    "R": [[(0.05, 0.0), (0.05, 1.0), (0.38, 1.0), (0.55, 0.86), (0.55, 0.64), (0.38, 0.5), (0.05, 0.5)],
          [(0.3, 0.5), (0.6, 0.0)]],
    "Ø": [_oval(0.33, 0.5, 0.3, 0.5), [(-0.04, -0.06), (0.7, 1.06)]],
}
STROKE_ADVANCE = {"1": 0.55, ".": 0.3}


class Pen:
    """A sheet of paper in pixels and a hand that draws on it in millimetres."""

    def __init__(self, sheet, rng: random.Random, longer_side_px: int = LONGER_SIDE_PX):
        self.rng = rng
        self.sheet = sheet
        self.scale = longer_side_px * SUPERSAMPLE / sheet.longer_side  # canvas pixels per mm
        self.size = (round(sheet.width * self.scale), round(sheet.height * self.scale))
        self.image = Image.new("L", self.size, 255)
        self.draw = ImageDraw.Draw(self.image)
        self.wobble_mm = sheet.longer_side * rng.uniform(0.0008, 0.0035)
        self.thick_mm = sheet.longer_side * rng.uniform(0.0018, 0.003)
        self.thin_mm = self.thick_mm * rng.uniform(0.4, 0.6)
        self.overshoot_mm = sheet.longer_side * rng.uniform(0.0, 0.008)
        self.ink = rng.randint(0, 70)  # 0 = black pen; higher = pencil grey
        self.font_path = rng.choice([f for f in HAND_FONTS if Path(f).exists()] or [None])
        self.stroke_letters = rng.random() < 0.4 or self.font_path is None  # our own lettering, no font
        self.slant = rng.uniform(-0.05, 0.25)

    def px(self, x: float, y: float) -> tuple[float, float]:
        return x * self.scale, self.size[1] - y * self.scale

    def _noise(self, n: int, amplitude: float) -> np.ndarray:
        """Smooth hand tremor along a path of n samples: a few sinusoids of random phase."""
        t = np.linspace(0, 1, n)
        out = np.zeros(n)
        for cycles in (self.rng.uniform(0.3, 1.2), self.rng.uniform(1.5, 3.5), self.rng.uniform(5, 9)):
            out += self.rng.uniform(0.3, 1.0) / cycles ** 0.5 * np.sin(2 * math.pi * cycles * t + self.rng.uniform(0, 6.3))
        return amplitude * out / 1.8

    def stroke(self, points_mm, width_mm: float | None = None, wobble: float = 1.0, darkness: float = 1.0):
        """One pen stroke through the points (mm), with tremor across it and pressure along it."""
        pts = np.asarray(points_mm, float)
        if len(pts) < 2:
            return
        seg = np.hypot(*np.diff(pts, axis=0).T)
        total = float(seg.sum())
        if total <= 0:
            return
        n = max(8, int(total * self.scale / 3))
        s = np.concatenate([[0], np.cumsum(seg)])
        u = np.linspace(0, total, n)
        path = np.stack([np.interp(u, s, pts[:, 0]), np.interp(u, s, pts[:, 1])], axis=1)
        tangent = np.gradient(path, axis=0)
        normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-9)
        # A short stroke (a small hole) trembles less: the hand moves less.
        tremor = self.wobble_mm * wobble * min(1.0, total / (0.08 * self.sheet.longer_side))
        path = path + normal * self._noise(n, tremor)[:, None]
        width = (width_mm or self.thick_mm) * self.scale
        pressure = 0.8 + 0.25 * np.sin(np.linspace(0, self.rng.uniform(1, 4), n) + self.rng.uniform(0, 6.3))
        taper = np.minimum(1, np.minimum(np.arange(n), np.arange(n)[::-1]) / max(2, 0.08 * n) + 0.45)
        grey = self.ink + (255 - self.ink) * (1 - darkness)
        canvas = [self.px(x, y) for x, y in path]
        for i in range(n - 1):
            w = max(1, int(round(width * pressure[i] * taper[i])))
            level = int(min(250, grey + (1 - pressure[i]) * 60))
            self.draw.line([canvas[i], canvas[i + 1]], fill=level, width=w)

    def line(self, a, b, width_mm=None, overshoot: bool = True, **kw):
        (x1, y1), (x2, y2) = a, b
        length = math.hypot(x2 - x1, y2 - y1)
        if length <= 0:
            return
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        e1 = self.rng.uniform(-0.3, 1.0) * self.overshoot_mm if overshoot else 0
        e2 = self.rng.uniform(-0.3, 1.0) * self.overshoot_mm if overshoot else 0
        self.stroke([(x1 - ux * e1, y1 - uy * e1), (x2 + ux * e2, y2 + uy * e2)], width_mm, **kw)

    def arc(self, cx, cy, r, start, end, width_mm=None, closing: bool = False, **kw):
        """An arc counter-clockwise from start to end (degrees); a circle when closing, its ends overlapping."""
        if closing:
            start = self.rng.uniform(0, 360)
            end = start + 360 + self.rng.uniform(-6, 14)
        elif end <= start:
            end += 360
        squash = 1 + self.rng.uniform(-0.015, 0.015)
        tilt = self.rng.uniform(0, math.pi)
        n = max(12, int(abs(end - start) / 4 + r * self.scale / 6))
        pts = []
        for a in np.radians(np.linspace(start, end, n)):
            dx, dy = r * math.cos(a), r * math.sin(a)
            # a slightly elliptical hand circle: stretched along a random axis by `squash`
            along = dx * math.cos(tilt) + dy * math.sin(tilt)
            dx += (squash - 1) * along * math.cos(tilt)
            dy += (squash - 1) * along * math.sin(tilt)
            pts.append((cx + dx, cy + dy))
        self.stroke(pts, width_mm, **kw)

    def dash_dot(self, points_mm, closed_circle=None):
        """A centre line: long dash, gap, short dash, gap, drawn thin."""
        dash, gap = self.sheet.longer_side * 0.03, self.sheet.longer_side * 0.007
        if closed_circle is not None:
            cx, cy, r = closed_circle
            circumference = 2 * math.pi * r
            points_mm = [(cx + r * math.cos(a), cy + r * math.sin(a))
                         for a in np.linspace(0, 2 * math.pi, max(24, int(circumference / 1.5)))]
        pts = np.asarray(points_mm, float)
        seg = np.hypot(*np.diff(pts, axis=0).T)
        s = np.concatenate([[0], np.cumsum(seg)])
        position, pattern = 0.0, [(dash, True), (gap, False), (gap * 0.6, True), (gap, False)]
        i = 0
        while position < s[-1]:
            length, inked = pattern[i % 4]
            if inked:
                u = np.linspace(position, min(position + length, s[-1]), 6)
                self.stroke(np.stack([np.interp(u, s, pts[:, 0]), np.interp(u, s, pts[:, 1])], 1),
                            self.thin_mm, wobble=0.5, darkness=0.85)
            position += length
            i += 1

    def stroke_text(self, text: str, at_mm, height_mm: float, rotation: float = 0.0):
        """Lettering with the pen itself (STROKE_GLYPHS): slanted, each character a little different."""
        h = height_mm * 0.95
        advances = [STROKE_ADVANCE.get(ch, 0.8) for ch in text]
        width = sum(advances) - 0.15
        turn = math.radians(rotation + self.rng.uniform(-3, 3))
        x = -width / 2
        for ch, advance in zip(text, advances):
            size = h * self.rng.uniform(0.92, 1.06)
            lift = self.rng.uniform(-0.04, 0.04)
            for glyph_stroke in STROKE_GLYPHS.get(ch, []):
                pts = []
                for u, v in glyph_stroke:
                    lx, ly = (x + (u + self.slant * v) * size / h) * h, (v + lift - 0.5) * size
                    pts.append((at_mm[0] + lx * math.cos(turn) - ly * math.sin(turn),
                                at_mm[1] + lx * math.sin(turn) + ly * math.cos(turn)))
                self.stroke(pts, self.thin_mm * 1.3, wobble=0.15)
            x += advance

    def text(self, text: str, at_mm, height_mm: float, rotation: float = 0.0, anchor: str = "centre"):
        """Hand lettering: each character its own size, slant and baseline, the whole word turned."""
        if self.stroke_letters:
            return self.stroke_text(text, at_mm, height_mm, rotation)
        size = max(8, int(height_mm * self.scale * 1.35))
        font = ImageFont.truetype(self.font_path, size) if self.font_path else ImageFont.load_default()
        glyphs = []
        for ch in text:
            s = int(size * self.rng.uniform(0.92, 1.08))
            f = ImageFont.truetype(self.font_path, s) if self.font_path else font
            box = f.getbbox(ch)
            w, h = max(1, box[2] - box[0] + 4), int(size * 1.5)
            tile = Image.new("L", (w, h), 0)
            ImageDraw.Draw(tile).text((2 - box[0], int(size * 0.15) + self.rng.randint(-size // 14, size // 14)),
                                      ch, fill=255, font=f)
            glyphs.append(tile.rotate(self.rng.uniform(-6, 6), resample=Image.BILINEAR, expand=False))
        spacing = int(size * self.rng.uniform(0.0, 0.08))
        word = Image.new("L", (sum(g.width for g in glyphs) + spacing * len(glyphs) + 4, int(size * 1.5)), 0)
        x = 2
        for g in glyphs:
            word.paste(g, (x, 0), g)
            x += g.width + spacing
        word = word.crop(word.getbbox() or (0, 0, 1, 1))
        word = word.rotate(rotation + self.rng.uniform(-3, 3), resample=Image.BILINEAR, expand=True)
        cx, cy = self.px(*at_mm)
        if anchor == "left":
            cx += word.width / 2
        ink = Image.new("L", word.size, self.ink)
        self.image.paste(ink, (int(cx - word.width / 2), int(cy - word.height / 2)), word)

    def arrowhead(self, tip, direction_deg: float, kind: str, size_mm: float):
        """An arrowhead at `tip` pointing along direction: 'v' (two strokes), 'filled' or 'tick'."""
        a = math.radians(direction_deg)
        back = (tip[0] - size_mm * math.cos(a), tip[1] - size_mm * math.sin(a))
        side = 0.3 * size_mm
        left = (back[0] - side * math.sin(a), back[1] + side * math.cos(a))
        right = (back[0] + side * math.sin(a), back[1] - side * math.cos(a))
        if kind == "tick":
            t = math.radians(direction_deg + 45)
            half = 0.5 * size_mm
            self.stroke([(tip[0] - half * math.cos(t), tip[1] - half * math.sin(t)),
                         (tip[0] + half * math.cos(t), tip[1] + half * math.sin(t))], self.thin_mm * 1.4, wobble=0.2)
        elif kind == "filled":
            self.draw.polygon([self.px(*tip), self.px(*left), self.px(*right)], fill=self.ink)
        else:
            self.stroke([left, tip, right], self.thin_mm, wobble=0.2)

    def result(self) -> np.ndarray:
        small = self.image.resize((self.size[0] // SUPERSAMPLE, self.size[1] // SUPERSAMPLE), Image.LANCZOS)
        return np.asarray(small)


def _value_text(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def draw_dimensions(pen: Pen, part, rng: random.Random):
    th = part.text_height
    arrow = rng.choice(("v", "filled", "tick", "v"))
    arrow_mm = th * rng.uniform(0.5, 0.8)
    thin = pen.thin_mm
    for d in part.dimensions:
        if d.kind == "linear":
            horizontal = d.direction == 0
            if horizontal:
                a, b = (d.p1[0], d.at), (d.p2[0], d.at)
                ext = [(d.p1, a), (d.p2, b)]
            else:
                a, b = (d.at, d.p1[1]), (d.at, d.p2[1])
                ext = [(d.p1, a), (d.p2, b)]
            for foot, end in ext:  # extension lines: a small gap at the part, a little beyond the dimension line
                length = math.hypot(end[0] - foot[0], end[1] - foot[1])
                if length < 1e-6:
                    continue
                ux, uy = (end[0] - foot[0]) / length, (end[1] - foot[1]) / length
                pen.line((foot[0] + ux * 0.25 * th, foot[1] + uy * 0.25 * th),
                         (end[0] + ux * 0.35 * th, end[1] + uy * 0.35 * th), thin, overshoot=False, wobble=0.4)
            pen.line(a, b, thin, overshoot=False, wobble=0.4)
            angle = 0 if horizontal else 90
            if b[0] < a[0] or b[1] < a[1]:
                a, b = b, a
            pen.arrowhead(a, angle + 180, arrow, arrow_mm)
            pen.arrowhead(b, angle, arrow, arrow_mm)
            mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
            lift = 0.8 * th
            if horizontal:
                pen.text(_value_text(d.value), (mid[0], mid[1] + lift), th)
            else:
                pen.text(_value_text(d.value), (mid[0] - lift, mid[1]), th, rotation=90)
        else:
            r = d.radius
            a = math.radians(d.direction)
            edge = (d.center[0] + r * math.cos(a), d.center[1] + r * math.sin(a))
            text = ("Ø" if d.kind == "diameter" else "R") + _value_text(d.value)
            if d.inside:  # leader from the arc towards its centre, the value inside
                inner = (d.center[0] + 0.25 * r * math.cos(a), d.center[1] + 0.25 * r * math.sin(a))
                pen.line(inner, edge, thin, overshoot=False, wobble=0.3)
                pen.arrowhead(edge, d.direction, arrow, arrow_mm)
                pen.text(text, (d.center[0] - 0.35 * r * math.cos(a), d.center[1] - 0.35 * r * math.sin(a) + 0.6 * th), th)
                continue
            reach = 1.6 * th
            knee = (edge[0] + reach * math.cos(a), edge[1] + reach * math.sin(a))
            right = math.cos(a) >= 0
            shoulder = (knee[0] + (1 if right else -1) * 0.7 * th * (len(text) * 0.65), knee[1])
            pen.stroke([edge, knee, shoulder], thin, wobble=0.3)
            pen.arrowhead(edge, d.direction + 180, arrow, arrow_mm)
            tx = (knee[0] + shoulder[0]) / 2
            pen.text(text, (tx, knee[1] + 0.7 * th), th)


def draw_part(part, rng: random.Random, longer_side_px: int = LONGER_SIDE_PX) -> np.ndarray:
    """The part as a hand sketch: a grey uint8 image of exactly the sheet."""
    pen = Pen(part.sheet, rng, longer_side_px)
    for primitive in part.primitives:
        if isinstance(primitive, Line):
            pen.line((primitive.x1, primitive.y1), (primitive.x2, primitive.y2))
        elif isinstance(primitive, Rectangle):
            x, y, w, h = primitive.x, primitive.y, primitive.width, primitive.height
            corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
            if rng.random() < 0.5:  # four separate strokes that cross at the corners
                for i in range(4):
                    pen.line(corners[i], corners[(i + 1) % 4])
            else:
                pen.stroke(corners + [corners[0]])
        elif isinstance(primitive, Circle):
            pen.arc(primitive.x, primitive.y, primitive.radius, 0, 360, closing=True)
        elif isinstance(primitive, Arc):
            pen.arc(primitive.x, primitive.y, primitive.radius, primitive.start_angle, primitive.end_angle)
        elif isinstance(primitive, Polyline):
            if rng.random() < 0.5:
                path = primitive.path()
                for a, b in zip(path, path[1:]):
                    pen.line(a, b)
            else:
                pen.stroke(primitive.path())
    for a, b in part.centre_lines:
        pen.dash_dot([a, b])
    for x, y, half in part.centre_marks:
        pen.line((x - half, y), (x + half, y), pen.thin_mm, overshoot=False, wobble=0.3, darkness=0.85)
        pen.line((x, y - half), (x, y + half), pen.thin_mm, overshoot=False, wobble=0.3, darkness=0.85)
    for circle in part.pitch_circles:
        pen.dash_dot(None, closed_circle=circle)
    for loops in part.hatches:
        _hatch(pen, loops)
    if part.frame:
        inset = 5 if part.sheet.longer_side < 250 else 10
        w, h = part.sheet.width, part.sheet.height
        pen.stroke([(inset, inset), (w - inset, inset), (w - inset, h - inset), (inset, h - inset), (inset, inset)],
                   pen.thick_mm * 1.3, wobble=0.5)
    draw_dimensions(pen, part, rng)
    return pen.result()


def _hatch(pen: Pen, loops):
    """45-degree strokes across a rectangle or the ring between two circles."""
    spacing = pen.sheet.longer_side * 0.012
    kind, data = loops[0]
    if kind == "poly":
        xs, ys = [p[0] for p in data], [p[1] for p in data]
        x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
        c = x0 - (y1 - y0)
        while c < x1:
            # the line y - y0 = x - c, clipped to the box
            xa, xb = max(x0, c), min(x1, c + (y1 - y0))
            if xb > xa:
                pen.line((xa, y0 + xa - c), (xb, y0 + xb - c), pen.thin_mm, overshoot=False, wobble=0.2)
            c += spacing
    else:
        (cx, cy, outer), inner = data, loops[1][1][2]
        k = -outer
        while k < outer:
            # chord of the line x - y = k*sqrt(2) (45 degrees) through the ring, inner circle cut out
            d = k
            if abs(d) < outer:
                half_outer = math.sqrt(outer ** 2 - d ** 2)
                half_inner = math.sqrt(inner ** 2 - d ** 2) if abs(d) < inner else 0
                ux, uy = math.cos(math.pi / 4), math.sin(math.pi / 4)
                px0, py0 = cx + d * ux, cy - d * uy
                spans = [(-half_outer, -half_inner), (half_inner, half_outer)] if half_inner else [(-half_outer, half_outer)]
                for s0, s1 in spans:
                    pen.line((px0 + s0 * ux, py0 + s0 * uy), (px0 + s1 * ux, py0 + s1 * uy), pen.thin_mm,
                             overshoot=False, wobble=0.2)
            k += spacing


def draw(seed: int):
    parts = load_parts_module()
    part = parts.make_part(seed)
    image = draw_part(part, random.Random(seed + 7))
    label = part.label("", style="hand")
    del label["image"]
    return image, label


def main(argv=None) -> int:
    return renderer_main(argv, __doc__.split("\n\n")[0], SET_NAME,
                         lambda folder, seeds, desc: write_half(folder, seeds, draw, desc), SEED_BASE)


if __name__ == "__main__":
    sys.exit(main())
