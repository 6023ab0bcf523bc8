"""Synthetic technical drawings with exact ground truth: everything the model learns from.

`make_example(seed, index, config)` draws drawing number `index` of the endless stream `seed`: a sheet,
1..12 primitives on the contract's value grid, laid out without overlaps, dimensioned the way drafters
do it, rendered in one of four styles (clean CAD output, hand sketch, scan, phone photo). It depends on
(seed, index, config) alone, so any worker can produce any example and a run can resume anywhere.
`write_dataset` writes a dataset folder in the contract's format (labels.jsonl + images/).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cad2program.contract.program import Primitive, Sheet, TYPE_NAMES

STYLES = ("clean", "sketch", "scan", "photo")
# Common paper sizes in mm (landscape); a share of sheets uses them, the rest are arbitrary.
PAPER_SIZES = ((297.0, 210.0), (420.0, 297.0), (210.0, 148.0), (279.4, 215.9), (355.6, 215.9), (431.8, 279.4),
               (148.0, 105.0))


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; the training curriculum changes these (fewer primitives, larger text first)."""

    style: str = "mixed"  # one of STYLES, or "mixed": a style per drawing, drawn from the seed
    long_side_px: int = 512  # pixels of the image's longer side
    min_primitives: int = 1
    max_primitives: int = 12
    types: tuple[str, ...] = ("line", "rectangle", "circle", "arc", "polyline")
    text_height: tuple[float, float] = (0.025, 0.04)  # digit height / the sheet's longer side
    sheet_sides: tuple[float, float] = (50.0, 500.0)  # mm
    max_aspect: float = 2.0
    part_share: float = 0.4  # drawings that hold a part-like composition (synth.parts), the rest scattered

    def problems(self) -> list[str]:
        """What is wrong with this configuration (empty when usable)."""
        problems = []
        if self.style not in STYLES + ("mixed",):
            problems.append(f"style {self.style!r} is not one of {', '.join(STYLES + ('mixed',))}")
        if self.long_side_px < 16:
            problems.append(f"long_side_px {self.long_side_px} is too small (at least 16)")
        if not 1 <= self.min_primitives <= self.max_primitives:
            problems.append(f"primitive counts {self.min_primitives}..{self.max_primitives}: need 1 <= min <= max")
        unknown = [t for t in self.types if t not in TYPE_NAMES]
        if unknown or not self.types:
            problems.append(f"types {list(self.types)}: each must be one of {', '.join(TYPE_NAMES)}")
        low, high = self.text_height
        if not 0 < low <= high < 0.2:
            problems.append(f"text_height {self.text_height}: need 0 < low <= high < 0.2")
        side_low, side_high = self.sheet_sides
        if not 10 <= side_low <= side_high <= 5000:
            problems.append(f"sheet_sides {self.sheet_sides}: need 10 <= low <= high <= 5000 mm")
        if not 0.0 <= self.part_share <= 1.0:
            problems.append(f"part_share {self.part_share} must be in [0, 1]")
        if self.max_aspect < 1:
            problems.append(f"max_aspect {self.max_aspect} must be >= 1")
        return problems


@dataclasses.dataclass
class Example:
    image: np.ndarray  # uint8 (H, W, 3) RGB
    sheet: Sheet
    primitives: list[Primitive]
    style: str
    # (primitive index, field, text written on the drawing): what the annotations say.
    annotations: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)
    # For scans and photos: the JPEG bytes `image` was decoded from (what a dataset folder stores).
    encoded: bytes | None = None
    # Primitives whose sizes the drawing does not write (a part's repeated holes): labelled
    # `"annotated": false` (contract 1.1), so size exactness does not count them.
    unannotated: tuple[int, ...] = ()


def image_size(sheet: Sheet, long_side_px: int) -> tuple[int, int]:
    """(width, height) in pixels: the longer side gets `long_side_px`, the other follows the aspect."""
    if sheet.width >= sheet.height:
        return long_side_px, max(1, round(long_side_px * sheet.height / sheet.width))
    return max(1, round(long_side_px * sheet.width / sheet.height)), long_side_px


def sample_sheet(rng: np.random.Generator, config: GeneratorConfig) -> Sheet:
    """A sheet within config.sheet_sides and config.max_aspect; whole millimetres mostly."""
    low, high = config.sheet_sides
    if rng.random() < 0.15:
        papers = [p for p in PAPER_SIZES
                  if low <= p[1] and p[0] <= high and p[0] <= config.max_aspect * p[1]]
        if papers:
            long_side, short_side = papers[rng.integers(len(papers))]
            return Sheet(long_side, short_side) if rng.random() < 0.6 else Sheet(short_side, long_side)
    long_side = math.exp(rng.uniform(math.log(low), math.log(high)))
    aspect = 1.0 if rng.random() < 0.1 else rng.uniform(1.0, config.max_aspect)
    short_side = max(low, long_side / aspect)
    long_side, short_side = float(round(long_side)), float(math.ceil(short_side))
    long_side = min(max(long_side, low), high)
    short_side = min(max(short_side, low, math.ceil(long_side / config.max_aspect)), long_side)
    return Sheet(long_side, short_side) if rng.random() < 0.5 else Sheet(short_side, long_side)


def make_example(seed: int, index: int, config: GeneratorConfig = GeneratorConfig()) -> Example:
    """Drawing number `index` of the stream `seed`: same (seed, index, config), same bytes."""
    from cad2program.synth import render

    rng, style, content, sheet, size, groups = _plan(seed, index, config)
    look = render.sample_look(rng, style, content, sheet, config.long_side_px)
    image, encoded = render.render(rng, sheet, size, groups, look)
    annotations = [(i, field, text) for i, g in enumerate(groups) for field, text in g.annotations]
    return Example(image, sheet, [g.primitive for g in groups], style, annotations, encoded, unannotated(groups))


def unannotated(groups) -> tuple[int, ...]:
    """Indices of the groups whose primitive has a size field that none of its annotations writes."""
    out = []
    for i, group in enumerate(groups):
        written = {field for field, _ in group.annotations}
        if any(field not in written for field in type(group.primitive).SIZE_FIELDS):
            out.append(i)
    return tuple(out)


def make_labels(seed: int, index: int, config: GeneratorConfig = GeneratorConfig()
                ) -> tuple[Sheet, list[Primitive], str]:
    """(sheet, primitives, style) of `make_example(seed, index, config)` without rendering the image."""
    _, style, _, sheet, _, groups = _plan(seed, index, config)
    return sheet, [g.primitive for g in groups], style


def _plan(seed: int, index: int, config: GeneratorConfig):
    """Everything but the rendering: the random stream, style, sheet, image size and placed groups."""
    from cad2program.synth import fonts, layout, parts

    problems = config.problems()
    if problems:
        raise ValueError("bad generator config: " + "; ".join(problems))
    # The style is part of the stream: a "clean" and a "photo" dataset with one seed share no layouts.
    rng = np.random.default_rng([seed, index, (STYLES + ("mixed",)).index(config.style)])
    style = config.style if config.style != "mixed" else STYLES[rng.integers(len(STYLES))]
    if style in ("clean", "sketch"):
        content = style
    else:
        content = "sketch" if rng.random() < (0.65 if style == "photo" else 0.4) else "clean"
    sheet = sample_sheet(rng, config)
    size = image_size(sheet, config.long_side_px)
    px_per_mm = (size[0] / sheet.width, size[1] / sheet.height)
    pen = sample_pen(rng, content, sheet, px_per_mm, config, fonts, layout)
    count = int(rng.integers(config.min_primitives, config.max_primitives + 1))
    groups = parts.layout_with_part(pen, sheet, count, config.types, config.min_primitives, config.part_share)
    return rng, style, content, sheet, size, groups


def sample_pen(rng, content, sheet, px_per_mm, config, fonts, layout):
    """Font, text height and the drafting conventions of one drawing."""
    hand = content == "sketch"
    faces = fonts.available_fonts()
    pool = faces["hand"] if hand and rng.random() < 0.85 else faces["cad"]
    face = pool[rng.integers(len(pool))]
    scale = min(px_per_mm)
    digit_mm = rng.uniform(*config.text_height) * sheet.longer_side
    font_px = fonts.font_size_for(face, digit_mm * scale)
    text_mm = font_px * face.digit_ratio / scale  # the height the font really draws
    if hand:
        arrow = rng.choice(["open", "filled", "closed", "tick"], p=[0.5, 0.35, 0.1, 0.05])
    else:
        arrow = rng.choice(["filled", "open", "closed", "tick", "dot"], p=[0.55, 0.2, 0.15, 0.05, 0.05])
    return layout.Pen(
        text_mm=text_mm, face=face, font_px=font_px, px_per_mm=px_per_mm, arrow=str(arrow),
        arrow_mm=text_mm * rng.uniform(0.7, 1.1), arrow_width=rng.uniform(0.17, 0.3),
        vertical_text="rotated" if rng.random() < 0.7 else "horizontal",
        placement="above" if rng.random() < 0.7 else "inline",
        ext_gap_mm=text_mm * (rng.uniform(0.0, 0.3) if hand else rng.uniform(0.15, 0.5)),
        ext_over_mm=text_mm * rng.uniform(0.2, 0.6),
        dim_offset_mm=text_mm * rng.uniform(1.0, 2.0),
        text_jitter_deg=3.0 if hand else 0.0,
        margin_mm=text_mm * 0.4 + 0.01 * sheet.longer_side,
        rng=rng)


def write_dataset(out_dir, count: int, seed: int, config: GeneratorConfig = GeneratorConfig(),
                  workers: int | None = None, progress: bool = True):
    """Writes `count` drawings as a dataset folder (labels.jsonl + images/) and returns its path."""
    from cad2program.synth.writer import write_dataset as _write

    return _write(out_dir, count, seed, config, workers, progress)


__all__ = ["STYLES", "GeneratorConfig", "Example", "make_example", "make_labels", "write_dataset", "image_size",
           "sample_sheet", "sample_pen"]
