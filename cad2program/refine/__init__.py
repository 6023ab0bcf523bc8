"""Refining what the model read against the ink of the full-resolution image.

The model sees the drawing at its input size (256 px in the `cpu` config): enough to find and read
every primitive, too coarse for the contract's 5-degree tolerance on a small arc's angles (at 256 px a
16 mm arc on a 330 mm sheet is 12 px across, and 5 degrees of it about one pixel). The user's image
usually has several times more pixels. This package keeps what the model decided (which primitives,
their types, the sizes it read from the annotations) and re-measures where each one's ink lies, at
the image's own resolution. It knows nothing about the model.

- `ink`: the ink mask of an image, computed once (`Ink`), and the frame from pixels to millimetres;
- `along_circle`: ink along a circle (runs of inked degrees, circle fits), which `arcs` builds on;
- `arcs`, `segments`, `polylines`: the measurers of circles and arcs, lines and rectangles, polylines;
- `circle_repeats`: more circles of a found one's radius where the ink draws them (a bolt pattern's holes);
- `joints`: where measured primitives meet (a line running on into an arc ends where the arc begins);
- `measure`: the registry of measurers (`MEASURERS`) and `measure_primitives`, which runs them;
- `erase`: an image less the strokes of what was found (the second look reads what is left).
"""

from cad2program.refine.arcs import CIRCLE_INKED, inked_rounds, refine_arc, refine_circle, remeasure_arcs
from cad2program.refine.erase import erase_primitives
from cad2program.refine.ink import Frame, Ink, as_ink, grey, ink_mask, ink_share, paper_around
from cad2program.refine.measure import MEASURERS, Measurer, measure_primitives, refine_primitives
from cad2program.refine.polylines import (drawn_alone, import_deferred, longest_side, refine_polyline, trace_polyline,
                                          with_bent_lines_traced)
from cad2program.refine.segments import refine_line, refine_rectangle

__all__ = ["CIRCLE_INKED", "Frame", "Ink", "MEASURERS", "Measurer", "as_ink", "drawn_alone", "erase_primitives",
           "grey", "import_deferred", "ink_mask", "ink_share", "inked_rounds", "longest_side", "measure_primitives",
           "paper_around", "refine_arc", "refine_circle", "refine_line", "refine_polyline", "refine_primitives",
           "refine_rectangle", "remeasure_arcs", "trace_polyline", "with_bent_lines_traced"]
