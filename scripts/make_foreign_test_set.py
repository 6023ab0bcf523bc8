"""Re-renders a labelled folder's programs with another program: CAD dimensions drawn by ezdxf.

    pip install pymupdf        # ezdxf's raster backend; only this script needs it
    python3 scripts/make_foreign_test_set.py testsets/clean testsets/ezdxf

The model is trained on drawings from the project's own renderer (cad2program.synth). Users' drawings
come from other programs, so a score on the project's test sets alone would overstate what a user
gets. This script keeps each drawing's ground truth and draws it anew, none of it by the project's
renderer: the program becomes a DXF file with real dimension entities (`outputs.dxf.build_dxf`, the
same file `predict --format dxf` writes), ezdxf renders those entities the way CAD programs do
(its own arrowheads, text font, line weights and text placement) and PyMuPDF rasterises the result,
white paper, black ink, no noise. Where `build_dxf` puts the dimensions (`outputs.scene`) is also not
the generator's layout code, and it dimensions no line lengths, as a drafter often would not.

Training must never render through this path, or the set stops measuring generalisation.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from cad2program.contract.dataset import load_labels, write_labels
from cad2program.outputs.dxf import SHEET_LAYER, build_dxf
from cad2program.contract.program import Sheet


def render_with_ezdxf(primitives, sheet: Sheet, longer_side_px: int) -> np.ndarray:
    """The program's DXF, dimensions included, as ezdxf draws it: a grey uint8 image of exactly the sheet."""
    from ezdxf.addons.drawing import Frontend, RenderContext, config, layout
    from ezdxf.addons.drawing.pymupdf import PyMuPdfBackend
    from ezdxf.math import BoundingBox2d

    doc = build_dxf(primitives, sheet)
    modelspace = doc.modelspace()
    for entity in list(modelspace.query(f'*[layer=="{SHEET_LAYER}"]')):  # the sheet's frame is not a primitive
        modelspace.delete_entity(entity)
    backend = PyMuPdfBackend()
    colours = config.Configuration(background_policy=config.BackgroundPolicy.WHITE,
                                   color_policy=config.ColorPolicy.BLACK)
    Frontend(RenderContext(doc), backend, config=colours).draw_layout(modelspace)
    page = layout.Page(sheet.width, sheet.height, layout.Units.mm, margins=layout.Margins.all(0))
    dpi = round(longer_side_px / (max(sheet.width, sheet.height) / 25.4))
    png = backend.get_pixmap_bytes(page, settings=layout.Settings(fit_page=False, scale=1.0), dpi=dpi,
                                   render_box=BoundingBox2d([(0, 0), (sheet.width, sheet.height)]))
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a labelled dataset folder whose programs are drawn anew")
    parser.add_argument("out", type=Path, help="the new dataset folder")
    parser.add_argument("--longer-side", type=int, default=1024, help="image size in pixels (default 1024)")
    args = parser.parse_args(argv)
    try:
        import pymupdf  # noqa: F401
    except ImportError:
        raise SystemExit("error: this script needs PyMuPDF for ezdxf's raster backend: pip install pymupdf")
    records, problems = load_labels(args.source, check_images=False)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for number, record in enumerate(tqdm(records, desc=f"ezdxf {args.out.name}")):
        key = f"images/{number:06d}.png"
        image = render_with_ezdxf(record.primitives, record.sheet, args.longer_side)
        Image.fromarray(image).save(args.out / key, optimize=True)
        lines.append({"image": key, "sheet": {"width": record.sheet.width, "height": record.sheet.height},
                      "primitives": [p.to_json() for p in record.primitives], "style": "ezdxf",
                      "source": f"{args.source.name}/{record.image_key}"})
    write_labels(args.out / "labels.jsonl", lines)
    print(f"{len(lines)} drawings written to {args.out}")
    return 0


if __name__ == "__main__":
    from cad2program.errors import UserError
    try:
        sys.exit(main())
    except UserError as err:  # a missing or unreadable model or folder: say which, no traceback
        sys.exit(f"error: {err}")
