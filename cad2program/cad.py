"""The CAD-facing API in one place: programs to DXF, drawings and overlays, and back.

    from cad2program.cad import run_program, to_dxf, render_program, overlay
    primitives = run_program(open("part.txt").read())   # program text or a JSON list
    to_dxf(primitives, Sheet(200, 150), "part.dxf")

Every function is pure (primitives and arrays in, bytes or files out); the work is done in
`cad2program.outputs`.
"""

from __future__ import annotations

from cad2program.outputs import (FORMATS, build_dxf, confidence_colour, dxf_bytes, fit_sheet, overlay,
                                 read_dxf, read_dxf_primitives, render_program, size_label, to_dxf)
from cad2program.program import parse_any

# "Running" a program only ever means parsing it: the parser walks the syntax tree and executes nothing.
run_program = parse_any

__all__ = ["run_program", "to_dxf", "dxf_bytes", "build_dxf", "read_dxf", "read_dxf_primitives", "render_program",
           "overlay", "confidence_colour", "fit_sheet", "size_label", "FORMATS"]
