"""Measuring primitives on the ink: one measurer per primitive type, behind one registry.

A measurer takes what the model read (its type, its sizes from the annotations, roughly where it is)
and returns the primitive placed on the ink of the full-resolution image, with the sizes the ink
shows. `MEASURERS` says which function measures which type; a primitive type without one is kept as
read. `docs/adding-a-primitive.md` walks through adding a type.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from cad2program.contract.geometry import tolerance
from cad2program.contract.program import Arc, Circle, Line, Polyline, Primitive, Rectangle, Sheet
from cad2program.refine.arcs import refine_arc, refine_circle
from cad2program.refine.ink import Frame, Ink, as_ink, ink_share
from cad2program.refine.polylines import refine_polyline, with_bent_lines_traced
from cad2program.refine.segments import refine_line, refine_rectangle

# (primitive, ink mask (H, W) bool, frame, matching tolerance in mm) -> (the primitive measured,
# {size field: the ink's value in mm, ..., "mm_per_px": the pixel size it was measured with}, or {})
MeasureFunction = Callable[[Primitive, np.ndarray, Frame, float], tuple[Primitive, dict]]


@dataclasses.dataclass(frozen=True)
class Measurer:
    measure: MeasureFunction
    straight_edged: bool  # its strokes are straight: the share of them on ink is kept (`ink.ink_share`)


def _placed_only(refine: Callable[[Primitive, np.ndarray, Frame, float], Primitive]) -> MeasureFunction:
    """A measurer for a type with no size to read (lines, polylines): it is only placed on the ink."""
    return lambda primitive, ink, frame, tolerance_mm: (refine(primitive, ink, frame, tolerance_mm), {})


MEASURERS: dict[type, Measurer] = {
    Line: Measurer(_placed_only(refine_line), straight_edged=True),
    Rectangle: Measurer(refine_rectangle, straight_edged=True),
    Circle: Measurer(refine_circle, straight_edged=False),
    Arc: Measurer(refine_arc, straight_edged=False),
    Polyline: Measurer(_placed_only(refine_polyline), straight_edged=True),
}


def measure_primitives(ink: Ink | np.ndarray, sheet: Sheet, primitives: Sequence[Primitive],
                       tolerance_mm: float | None = None) -> tuple[list[Primitive], list[dict[str, float]]]:
    """The primitives re-measured on an image's ink (the image, or its `Ink`), and for each the sizes
    the ink shows, in mm (a rectangle's "width" and "height", a circle's or arc's "radius", with
    "mm_per_px", the size of a pixel they were measured with; {} when not measured), plus, for
    straight-edged ones, "ink_share": the share of their strokes that lies on ink."""
    ink = as_ink(ink)
    mask, frame = ink.mask, ink.frame(sheet)
    tolerance_mm = tolerance(sheet) if tolerance_mm is None else tolerance_mm
    out, sizes = [], []
    for p in primitives:
        measurer = MEASURERS.get(type(p))
        p, size = measurer.measure(p, mask, frame, tolerance_mm) if measurer else (p, {})
        out.append(p)
        sizes.append(size)
    out = with_bent_lines_traced(out, mask, frame, tolerance_mm)  # a line may become a polyline here
    sizes = [{**size, "ink_share": ink_share(p, ink.near, frame)}
             if type(p) in MEASURERS and MEASURERS[type(p)].straight_edged else size
             for p, size in zip(out, sizes)]
    return out, sizes


def refine_primitives(ink: Ink | np.ndarray, sheet: Sheet, primitives: Sequence[Primitive],
                      tolerance_mm: float | None = None) -> list[Primitive]:
    """The primitives re-measured on an image's ink (`measure_primitives` without the sizes)."""
    return measure_primitives(ink, sheet, primitives, tolerance_mm)[0]
