"""Fonts for annotation text: found by file path, checked glyph by glyph, rendered into small masks.

Fonts are looked up by file name under the usual font folders (install.sh installs the Debian
packages that provide them). A missing font is skipped, never an error: with none of the known
fonts present, any TrueType/OpenType file found is used, and with none at all, Pillow's built-in font.
Every font is checked for the glyphs the annotations use; a font that draws `Ø` as its "missing
glyph" box keeps its place, with `Ø` drawn the way a hand does: an `O` struck through.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_ROOTS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")

# File name -> kind: "cad" fonts look like CAD output, "hand" fonts like handwriting.
KNOWN_FONTS: dict[str, str] = {
    "DejaVuSans.ttf": "cad", "DejaVuSans-Oblique.ttf": "cad", "DejaVuSansCondensed.ttf": "cad",
    "DejaVuSansCondensed-Oblique.ttf": "cad", "DejaVuSansMono.ttf": "cad", "DejaVuSerif.ttf": "cad",
    "DejaVuSerifCondensed.ttf": "cad", "DejaVuSans-Bold.ttf": "cad",
    "LiberationSans-Regular.ttf": "cad", "LiberationSans-Italic.ttf": "cad", "LiberationSans-Bold.ttf": "cad",
    "LiberationSerif-Regular.ttf": "cad", "LiberationMono-Regular.ttf": "cad",
    "FreeSans.ttf": "cad", "FreeSansOblique.ttf": "cad", "FreeSerif.ttf": "cad", "FreeMono.ttf": "cad",
    "FreeMonoBold.ttf": "cad", "osifont.ttf": "cad",  # osifont: ISO 3098 lettering, as CAD programs write
    "Humor-Sans.ttf": "hand", "ComicNeue-Regular.otf": "hand", "ComicNeue-Light.otf": "hand",
    "ComicNeue-Italic.otf": "hand", "ComicNeue-Bold.otf": "hand", "dkg.ttf": "hand", "dkgIt.ttf": "hand",
    "Breip.ttf": "hand",
}
# Not used although installed: Femke Klaver draws hollow outline letters and has no Ø.
REQUIRED_GLYPHS = "0123456789.R"  # without these a font cannot write an annotation at all
DIAMETER = "\u00d8"  # Ø
_PROBE_SIZE = 64
_NOTDEF_PROBE = "\ue01f"  # a private-use code point: every font draws its "missing glyph" for it


@dataclasses.dataclass(frozen=True)
class FontFace:
    """One usable font file (path None: Pillow's built-in font)."""

    path: str | None
    kind: str  # "cad" or "hand"
    has_diameter: bool  # draws a real Ø (else: O struck through)
    digit_ratio: float  # height of the digits / font size
    stroke_ratio: float = 0.08  # stroke width / font size


def load_font(path: str | None, size: float) -> ImageFont.FreeTypeFont:
    """The font at `size` px, cached by (path, size); sizes are kept to 0.5 px steps by callers."""
    return _load_font(path, float(size))


@functools.lru_cache(maxsize=1024)
def _load_basic_font(path: str, size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size=size, layout_engine=ImageFont.Layout.BASIC)


@functools.lru_cache(maxsize=1024)
def _load_font(path: str | None, size: float):
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size=size)


def _glyph_mask(font, text: str) -> np.ndarray:
    image = Image.new("L", (_PROBE_SIZE * 3, _PROBE_SIZE * 2), 0)
    ImageDraw.Draw(image).text((4, 4), text, font=font, fill=255)
    return np.asarray(image)


def _probe(path: str | None, kind: str) -> FontFace | None:
    """The face when it draws every required glyph, else None (also for unreadable files)."""
    try:
        font = _load_font(path, float(_PROBE_SIZE))
        notdef = _glyph_mask(font, _NOTDEF_PROBE)

        def draws(char: str) -> bool:
            mask = _glyph_mask(font, char)
            return bool(mask.any()) and not np.array_equal(mask, notdef)

        if not all(draws(c) for c in REQUIRED_GLYPHS):
            return None
        # Median single-digit height: old-style figures rise and sink, the bbox of all would overstate it.
        heights = [font.getbbox(d)[3] - font.getbbox(d)[1] for d in "0123456789"]
        ring = (_glyph_mask(font, "0") > 127).astype(np.uint8)
    except (OSError, ValueError):
        return None
    digit = float(np.median(heights))
    if digit <= 0:
        return None
    # Stroke width: twice the largest distance from the outline inside the 0's ring.
    stroke = 2.0 * float(cv2.distanceTransform(np.pad(ring, 1), cv2.DIST_L2, 3).max())
    return FontFace(path, kind, draws(DIAMETER), digit / _PROBE_SIZE,
                    float(np.clip(stroke / _PROBE_SIZE, 0.02, 0.2)))


def _font_files() -> dict[str, str]:
    """File name -> path of every font file under the font roots (first found wins)."""
    found: dict[str, str] = {}
    for root in FONT_ROOTS:
        root_path = Path(os.path.expanduser(root))
        if not root_path.is_dir():
            continue
        for path in sorted(root_path.rglob("*")):
            if path.suffix.lower() in (".ttf", ".otf") and path.is_file():
                found.setdefault(path.name, str(path))
    return found


@functools.lru_cache(maxsize=1)
def available_fonts() -> dict[str, tuple[FontFace, ...]]:
    """Usable faces by kind ("cad", "hand"); neither kind is ever empty."""
    files = _font_files()
    faces: dict[str, list[FontFace]] = {"cad": [], "hand": []}
    for name in sorted(KNOWN_FONTS):
        if name in files:
            face = _probe(files[name], KNOWN_FONTS[name])
            if face is not None:
                faces[face.kind].append(face)
    if not faces["cad"]:  # none of the known fonts: any font that draws digits will do
        for name in sorted(files):
            if "math" in name.lower() or "symbol" in name.lower():
                continue
            face = _probe(files[name], "cad")
            if face is not None:
                faces["cad"].append(face)
            if len(faces["cad"]) >= 4:
                break
    if not faces["cad"]:
        builtin = _probe(None, "cad")
        faces["cad"].append(builtin or FontFace(None, "cad", False, 0.7))
    if not faces["hand"]:
        faces["hand"] = list(faces["cad"])
    return {kind: tuple(items) for kind, items in faces.items()}


def font_size_for(face: FontFace, digit_px: float) -> float:
    """Font size (0.5 px steps) whose digits are `digit_px` tall."""
    return max(4.0, round(2.0 * digit_px / face.digit_ratio) / 2.0)


def render_text(face: FontFace, size: float, text: str, angle: float = 0.0) -> np.ndarray:
    """Tight uint8 ink mask of `text`, rotated `angle` degrees counter-clockwise (read-only: cached)."""
    return _render_text(face, float(size), text, round(float(angle), 1))


@functools.lru_cache(maxsize=8192)
def _render_text(face: FontFace, size: float, text: str, angle: float) -> np.ndarray:
    mask = rotate_mask(_upright_text(face, size, text), angle)
    mask.flags.writeable = False
    return mask


# Upright masks are cached apart from their rotations: a label is measured upright and then drawn turned,
# and hand-written labels get a fresh tilt every time, so the same text comes back at many angles.
@functools.lru_cache(maxsize=8192)
def _upright_text(face: FontFace, size: float, text: str) -> np.ndarray:
    """The text laid out glyph by glyph from cached glyph masks: annotation texts rarely repeat between
    drawings, but their dozen characters do, and FreeType's layout per string was most of the cost."""
    placed = _glyph_set(face, size).place(text)
    if not placed:
        return np.zeros((1, 1), np.uint8)
    left = min(x for x, _, _ in placed)
    top = min(y for _, y, _ in placed)
    right = max(x + g.shape[1] for x, _, g in placed)
    bottom = max(y + g.shape[0] for _, y, g in placed)
    mask = np.zeros((bottom - top, right - left), np.uint8)
    for x, y, glyph in placed:
        h, w = glyph.shape
        target = mask[y - top:y - top + h, x - left:x - left + w]
        np.maximum(target, glyph, out=target)  # ink of neighbouring glyphs may touch
    mask.flags.writeable = False
    return mask


_PHASES = 4  # sub-pixel pen positions a glyph is rendered at (a quarter pixel is below what the eye sees)


@functools.lru_cache(maxsize=2048)
def _glyph_set(face: FontFace, size: float) -> "GlyphSet":
    return GlyphSet(face, size)


_KERNING_SIZE = 64.0


@functools.lru_cache(maxsize=16384)
def _pair_kerning(face: FontFace, previous: str, char: str) -> float:
    """Kerning between a glyph pair per px of font size, from the font's own layout of the pair at one
    size: unhinted layout scales kerning with the size (to 0.01 px), so one measurement serves them all."""
    font = load_font(face.path, _KERNING_SIZE)
    pair = float(font.getlength(previous + char)) / _KERNING_SIZE
    return pair - _unit_advance(face, previous) - _unit_advance(face, char)


@functools.lru_cache(maxsize=4096)
def _unit_advance(face: FontFace, char: str) -> float:
    """A glyph's advance per px of font size (unhinted layout: it scales with the size, to 0.01 px)."""
    return float(load_font(face.path, _KERNING_SIZE).getlength(char)) / _KERNING_SIZE


class GlyphSet:
    """One font at one size: glyph masks, advances and pair kerning, each measured once (plain dicts:
    hashing the FontFace for every character would cost more than the lookups save)."""

    def __init__(self, face: FontFace, size: float):
        self.face, self.size = face, size
        # Glyphs are rasterised one at a time: the basic layout engine draws the same bitmaps as Raqm for
        # a lone character at a third of the cost (no shaping). Advances and kerning come from Raqm.
        self.font = _load_font(face.path, size) if face.path is None else _load_basic_font(face.path, size)
        self.advances: dict[str, float] = {}
        self.kerning: dict[tuple[str, str], float] = {}
        self.glyphs: dict[tuple[str, int, bool], tuple[np.ndarray | None, int, int]] = {}

    def place(self, text: str) -> list[tuple[int, int, np.ndarray]]:
        """(x, y, mask) of every inked glyph: the mask's top-left corner relative to the text origin."""
        struck = text.startswith(DIAMETER) and not self.face.has_diameter
        placed = []
        pen, previous = 0.0, ""
        for index, char in enumerate(text):
            slashed = struck and index == 0
            drawn = "O" if slashed else char
            if previous:
                pair = (previous, drawn)
                kern = self.kerning.get(pair)
                if kern is None:
                    kern = self.kerning[pair] = _pair_kerning(self.face, previous, drawn) * self.size
                pen += kern
            whole = math.floor(pen)
            phase = min(_PHASES - 1, int(round((pen - whole) * _PHASES)))
            key = (drawn, phase, slashed)
            found = self.glyphs.get(key)
            if found is None:
                found = self.glyphs[key] = self._render(drawn, phase, slashed)
            glyph, dx, dy = found
            if glyph is not None:
                placed.append((whole + dx, dy, glyph))
            pen += self.advance(drawn)
            previous = drawn
        return placed

    def advance(self, char: str) -> float:
        value = self.advances.get(char)
        if value is None:
            value = self.advances[char] = _unit_advance(self.face, char) * self.size
        return value

    def _render(self, char: str, phase: int, struck: bool) -> tuple[np.ndarray | None, int, int]:
        """A glyph's tight mask at pen phase `phase` / _PHASES px, and its offset from the pen position;
        struck: an O with the hand-drawn diameter slash. Hairline fonts are emboldened glyph by glyph (a
        dilation of the glyphs' maximum is the maximum of their dilations)."""
        font, size, face = self.font, self.size, self.face
        core, (left, top) = font.getmask2(char, "L", start=(phase / _PHASES, 0.0))
        mask = np.asarray(Image.Image()._new(core))  # Pillow's wrapper of its own core image
        pad = max(2, int(size * 0.15))
        padded = np.zeros((mask.shape[0] + 2 * pad, mask.shape[1] + 2 * pad), np.uint8)  # np.pad is slow
        padded[pad:pad + mask.shape[0], pad:pad + mask.shape[1]] = mask
        if struck:  # the hand-drawn diameter sign: a slash through the O, a little past it
            o_left, o_top, o_right, o_bottom = font.getbbox("O")
            x0, x1 = pad - left + o_left, pad - left + o_right
            y0, y1 = pad - top + o_top, pad - top + o_bottom
            over = 0.08 * (x1 - x0)
            weight = max(1, int(round(size * face.stroke_ratio * 0.6)))
            cv2.line(padded, (int(x0 - over), int(y1 + over)), (int(x1 + over), int(y0 - over)), 255, weight,
                     cv2.LINE_AA)
        if face.stroke_ratio * size < 1.6:  # hairline fonts at small sizes fade away: embolden them
            padded = cv2.dilate(padded, np.ones((2, 2), np.uint8))
        x, y, w, h = cv2.boundingRect(padded)
        if w == 0:
            return None, 0, 0
        glyph = padded[y:y + h, x:x + w].copy()
        glyph.flags.writeable = False
        return glyph, left - pad + x, top - pad + y


def _crop(mask: np.ndarray) -> np.ndarray:
    x, y, w, h = cv2.boundingRect(mask)  # box of the non-zero pixels
    if w == 0:
        return mask[:1, :1]
    return mask[y:y + h, x:x + w]


def rotate_mask(mask: np.ndarray, angle: float) -> np.ndarray:
    """Rotates counter-clockwise; quarter turns are exact, other angles interpolated."""
    quarter = angle / 90.0
    if abs(quarter - round(quarter)) < 1e-9:
        return np.ascontiguousarray(np.rot90(mask, int(round(quarter)) % 4))  # also a copy at 0 degrees
    h, w = mask.shape
    rad = np.deg2rad(angle)
    cos, sin = abs(np.cos(rad)), abs(np.sin(rad))
    out_w, out_h = int(np.ceil(w * cos + h * sin)) + 2, int(np.ceil(w * sin + h * cos)) + 2
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, 1.0)
    matrix[0, 2] += out_w / 2.0 - w / 2.0
    matrix[1, 2] += out_h / 2.0 - h / 2.0
    return _crop(cv2.warpAffine(mask, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=0))
