"""What a CAD user gets out: DXF files, annotated drawings (PNG/SVG) and overlays on the input image."""

from cad2program.outputs.draw import FORMATS, confidence_colour, overlay, render_program
from cad2program.outputs.dxf import build_dxf, dxf_bytes, read_dxf, read_dxf_primitives, to_dxf
from cad2program.outputs.scene import fit_sheet, size_label

__all__ = ["to_dxf", "dxf_bytes", "build_dxf", "read_dxf", "read_dxf_primitives", "render_program", "overlay",
           "confidence_colour", "fit_sheet", "size_label", "FORMATS"]
