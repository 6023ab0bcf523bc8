"""Battery set `parts-librecad`: the battery's part programs as DXF, printed by LibreCAD.

    apt-get install librecad         # Debian's LibreCAD 2.2 (headless through Qt's offscreen platform)
    pip install pymupdf
    python3 scripts/battery/render_librecad.py     # writes testsets/battery/parts-librecad/{dev,test}

Each drawing is a part from `parts.py` (seeds 23002xxxx, other than parts-ezdxf's) written by
`dxf_doc.py` with the dimension style also in the header variables (LibreCAD draws every DIMENSION
itself from those: its own arrowheads, its own stroke font, text inside the circle for diameters) and
the Ø / R prefixes in the dimension text. `librecad dxf2pdf -s 1 -f 0,0,0,0 -m` prints them at 1:1 on
its default page (A3 landscape here, whatever the DXF's limits say) with the drawing's origin at the
page's bottom-left corner; PyMuPDF then rasterises exactly the sheet's rectangle of that page (about
1000 px on the longer side). The mapping was checked by overlaying labels on the raster
(`--overlay DIR`). Training must never render through this path.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_parts_module, png_bytes_to_grey, renderer_main, write_half  # noqa: E402

SET_NAME = "parts-librecad"
SEED_BASE = 23002
LONGER_SIDE_PX = 1000
POINTS_PER_MM = 72 / 25.4


def print_with_librecad(dxf_paths: list[Path], out_dir: Path) -> None:
    """One `librecad dxf2pdf` run over many files (it starts once, which is most of its time)."""
    if shutil.which("librecad") is None:
        raise SystemExit("error: librecad is not installed (apt-get install librecad)")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    command = ["librecad", "dxf2pdf", "-s", "1", "-f", "0,0,0,0", "-m", "-t", str(out_dir)] + [str(p) for p in dxf_paths]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    missing = [p for p in dxf_paths if not (out_dir / (p.stem + ".pdf")).is_file()]
    if result.returncode != 0 or missing:
        raise SystemExit(f"error: librecad dxf2pdf failed (exit {result.returncode}, {len(missing)} PDFs missing): "
                         f"{result.stderr.strip()[-500:]}")


def sheet_raster(pdf_path: Path, sheet, longer_side_px: int = LONGER_SIDE_PX):
    """The sheet's rectangle (origin at the page's bottom-left, 1:1) of LibreCAD's PDF as a grey image."""
    import pymupdf

    with pymupdf.open(pdf_path) as pdf:
        page = pdf[0]
        width, height = sheet.width * POINTS_PER_MM, sheet.height * POINTS_PER_MM
        if width > page.rect.width + 1 or height > page.rect.height + 1:
            raise SystemExit(f"error: {pdf_path}: the {sheet.width} x {sheet.height} mm sheet does not fit "
                             f"LibreCAD's {page.rect.width / POINTS_PER_MM:.0f} x "
                             f"{page.rect.height / POINTS_PER_MM:.0f} mm page")
        clip = pymupdf.Rect(0, page.rect.height - height, width, page.rect.height)
        zoom = longer_side_px / (max(sheet.width, sheet.height) * POINTS_PER_MM)
        pixmap = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), clip=clip, colorspace=pymupdf.csGRAY)
        return png_bytes_to_grey(pixmap.tobytes("png"))


def write_librecad_half(out: Path, seeds: list[int], desc: str) -> int:
    from dxf_doc import build_part_dxf

    parts = load_parts_module()
    with tempfile.TemporaryDirectory(prefix="battery-librecad-") as tmp:
        tmp = Path(tmp)
        drawn = {}
        dxf_paths = []
        for seed in seeds:
            part = parts.make_part(seed)
            path = tmp / f"{seed}.dxf"
            build_part_dxf(part, random.Random(seed + 1), written_prefixes=True).saveas(path)
            drawn[seed] = part
            dxf_paths.append(path)
        print_with_librecad(dxf_paths, tmp)

        def draw(seed):
            part = drawn[seed]
            label = part.label("", style="parts-librecad")
            del label["image"]
            return sheet_raster(tmp / f"{seed}.pdf", part.sheet), label

        return write_half(out, seeds, draw, desc)


def main(argv=None) -> int:
    return renderer_main(argv, __doc__.split("\n\n")[0], SET_NAME,
                         lambda folder, seeds, desc: write_librecad_half(folder, seeds, desc), SEED_BASE)


if __name__ == "__main__":
    sys.exit(main())
