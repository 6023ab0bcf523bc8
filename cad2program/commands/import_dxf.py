"""Turn DXF files (a CAD archive) into a dataset folder to check, evaluate or fine-tune on.

Examples:
  cad2program import-dxf parts/*.dxf --out my_parts
  cad2program import-dxf archive/ --out my_parts --styles clean,scan --per-file 8

Each file is read with ezdxf (recover mode for damaged files), block references exploded. LINE,
CIRCLE, ARC, LWPOLYLINE and POLYLINE become the contract's primitives (a polyline's bulges become arcs
of their own); closed axis-aligned four-sided outlines become rectangles; centre and hidden lines are
drawn but are not primitives. The file's DIMENSION entities are drawn with their measured values;
drawings without any get dimensions as the generator adds them. Drawings with more than 12 primitives
are cut into crops of whole primitives. Every drawing is rendered in each style with the project's
renderer and degradations. One line a file says what was kept and what was skipped, and why.

DWG files are not read: convert them to DXF first (ODA File Converter, or LibreCAD: Save As DXF).
Exit status: 0 when every file was imported, 1 when any file failed (the others are still written),
2 for bad arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="DXF files, or folders searched for *.dxf (recursively)")
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder to write (labels.jsonl, images/)")
    parser.add_argument("--styles", default="clean,scan,photo",
                        help="comma-separated styles, one rendering of every drawing each: clean, sketch, scan, "
                             "photo (default: clean,scan,photo)")
    parser.add_argument("--per-file", type=int, metavar="N",
                        help="at most N drawings (crops) from one file, before styles (default: all)")
    parser.add_argument("--image-size", type=int, default=512, metavar="PX",
                        help="pixels of each image's longer side (default: 512, what the model reads)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the looks and dimension placement (default: 0; same seed, same folder)")
    parser.add_argument("--append", action="store_true", help="add to an existing labels.jsonl instead of replacing it")


def find_dxf_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".dxf", ".dwg") and p.is_file())
            files += found
        else:
            files.append(path)  # missing files get their own line in the report
    return files


def run(args: argparse.Namespace) -> int:
    from cad2program.dxf.dataset import STYLES, import_archive
    from cad2program.errors import UserError

    styles = [s.strip() for s in args.styles.split(",") if s.strip()]
    bad = [s for s in styles if s not in STYLES]
    if bad or not styles:
        raise UserError(f"--styles {args.styles!r}: each must be one of {', '.join(STYLES)}")
    if args.per_file is not None and args.per_file < 1:
        raise UserError(f"--per-file must be at least 1, got {args.per_file}")
    if not 64 <= args.image_size <= 4096:
        raise UserError(f"--image-size must be 64 to 4096 pixels, got {args.image_size}")
    files = find_dxf_files(args.paths)
    if not files:
        raise UserError("no DXF file found in " + ", ".join(str(p) for p in args.paths))
    reports = import_archive(files, args.out, styles, args.per_file, args.image_size, args.seed,
                             append=args.append)
    failed = [r for r in reports if r.error]
    drawings = sum(r.drawings for r in reports)
    print(f"{args.out / 'labels.jsonl'}: {drawings} drawings from {len(reports) - len(failed)} of "
          f"{len(reports)} files" + (f"; {len(failed)} failed (lines starting FAILED above)" if failed else ""))
    return 1 if failed else 0
