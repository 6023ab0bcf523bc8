"""What a CAD user gets out: DXF files, annotated drawings (PNG/SVG) and overlays on the input image,
and the CAD-facing API in one place:

    from cad2program.outputs import run_program, to_dxf, render_program, overlay
    primitives = run_program(open("part.txt").read())   # program text or a JSON list
    to_dxf(primitives, Sheet(200, 150), "part.dxf")

Every function is pure (primitives and arrays in, bytes or files out).
"""

from cad2program.contract.program_text import parse_any

from cad2program.outputs.draw import FORMATS, render_program
from cad2program.outputs.overlay import confidence_colour, overlay
from cad2program.outputs.dxf import build_dxf, dxf_bytes, read_dxf, read_dxf_primitives, to_dxf
from cad2program.outputs.scene import fit_sheet, size_label

# "Running" a program only ever means parsing it: the parser walks the syntax tree and executes nothing.
run_program = parse_any

__all__ = ["run_program", "to_dxf", "dxf_bytes", "build_dxf", "read_dxf", "read_dxf_primitives", "render_program", "overlay",
           "confidence_colour", "fit_sheet", "size_label", "FORMATS"]
