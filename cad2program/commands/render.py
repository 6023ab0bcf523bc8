"""Draw a program back: an annotated PNG or SVG drawing, or a DXF file with real dimensions.

The input is program text (`circle(x=30, y=5, radius=5)`, one call a line), a JSON list of
primitives, a JSON label object {"sheet": {...}, "primitives": [...]}, or a .dxf file (its GEOMETRY
layer, and its sheet from the SHEET layer: what `render --out x.dxf` writes). The format comes from
the --out suffix: .png, .svg or .dxf (millimetres; layers GEOMETRY, DIMENSIONS, SHEET).
The sheet is --sheet, else the label's, else the smallest one holding the primitives with a 10%
margin (at least 50 mm a side). Exit status 2 when the program does not parse (the message gives
the line and column) or has invalid values.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

OUTPUT_SUFFIXES = (".png", ".svg", ".dxf")
_SHEET_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[xX×]\s*(\d+(?:\.\d+)?)\s*$")


def parse_sheet(text: str):
    """`200x150` -> Sheet(200, 150); anything else is an argparse error that says what is expected."""
    from cad2program.contract.program import ProgramError, Sheet

    match = _SHEET_PATTERN.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in mm such as 200x150, got {text!r}")
    try:
        return Sheet(float(match.group(1)), float(match.group(2)))
    except ProgramError as err:
        raise argparse.ArgumentTypeError(f"{text!r}: {err}") from None


def _pixel_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels, got {text!r}") from None
    if not 16 <= value <= 16384:
        raise argparse.ArgumentTypeError(f"expected 16 to 16384 pixels, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("program", metavar="PROGRAM_OR_JSON",
                        help="a program file, a JSON list of primitives, a JSON label object or a .dxf file")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output file: .png, .svg or .dxf (the suffix picks the format)")
    parser.add_argument("--sheet", type=parse_sheet, metavar="WxH",
                        help="sheet size in mm, e.g. 200x150 (default: the label's, else fitted to the primitives)")
    parser.add_argument("--size", type=_pixel_size, default=1024, metavar="PX",
                        help="PNG pixels along the sheet's longer side (default 1024)")
    parser.add_argument("--no-dimensions", action="store_true",
                        help="geometry only, without the dimension annotations")


def load_drawing(path: Path):
    """(primitives, sheet or None) from a program file, a JSON list, a JSON label object or a DXF."""

    from cad2program.errors import UserError
    from cad2program.contract.program import ProgramError, Sheet, loads_json, primitives_from_json
    from cad2program.contract.program_text import parse_any

    if path.suffix.lower() == ".dxf":
        from cad2program.outputs import read_dxf

        if not path.is_file():
            raise UserError(f"{path}: no such file")
        try:
            return read_dxf(path)
        except ProgramError as err:
            message = str(err)  # unreadable files already name themselves; bad entities do not
            raise UserError(message if message.startswith(str(path)) else f"{path}: {message}") from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not a text file (byte {err.start} is not UTF-8)") from None
    try:
        if not text.lstrip().startswith("{"):
            return parse_any(text), None
        label = loads_json(text)
        if "primitives" not in label:
            raise ProgramError("a JSON object needs a 'primitives' list (and may have a 'sheet')")
        sheet = Sheet.from_json(label["sheet"]) if "sheet" in label else None
        return primitives_from_json(label["primitives"]), sheet
    except ProgramError as err:
        raise UserError(f"{path}: {err}") from None


def run(args: argparse.Namespace) -> int:
    from cad2program.errors import UserError
    from cad2program.outfile import output_problem, write_output
    from cad2program.outputs import dxf_bytes, fit_sheet, render_program
    from cad2program.contract.program import format_number, program_problems

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UserError(f"--out {out}: unknown format {suffix or '(no suffix)'!r}; "
                        f"use one of {', '.join(OUTPUT_SUFFIXES)}")
    if output_problem(out):
        raise UserError(output_problem(out))
    source = Path(args.program)
    primitives, label_sheet = load_drawing(source)
    sheet = args.sheet or label_sheet or fit_sheet(primitives)
    # Bad values (zero radius, equal arc angles) make a wrong drawing: refuse. Points off the sheet
    # are drawn anyway (clipped), with a warning, since a prediction may stray a little.
    invalid = program_problems(primitives)
    if invalid:
        raise UserError(f"{source}: " + "; ".join(invalid))
    for problem in program_problems(primitives, sheet):
        print(f"cad2program render: warning: {source}: {problem}", file=sys.stderr)

    if suffix == ".dxf":
        data = dxf_bytes(primitives, sheet, dimensions=not args.no_dimensions)
    else:
        data = render_program(primitives, sheet, px_long_side=args.size, fmt=suffix[1:],
                              annotate=not args.no_dimensions)
    write_output(out, data)
    size = format_number(sheet.width) + " x " + format_number(sheet.height)
    print(f"wrote {out}: {len(primitives)} primitive{'' if len(primitives) == 1 else 's'} "
          f"on a {size} mm sheet ({len(data) / 1024:.1f} KiB)")
    return 0
