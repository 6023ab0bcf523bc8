"""Battery set `parts-ezdxf`: the battery's part programs as DXF, drawn by ezdxf's drawing add-on.

    pip install pymupdf
    python3 scripts/battery/render_ezdxf.py            # writes testsets/battery/parts-ezdxf/{dev,test}
    python3 scripts/battery/render_ezdxf.py --overlay /tmp/check   # and red label overlays to look at

Each drawing is a part from `parts.py` (seeds 23001xxxx, deterministic) written as a DXF file by
`dxf_doc.py` (real DIMENSION entities: linear, diameter Ø, radius R; centre lines on the CENTER
linetype, centre marks, pitch circles, some hatching and border frames), rendered by ezdxf's drawing
add-on to PDF geometry and rasterised by PyMuPDF at about 1000 px on the longer side. Nothing of it
comes from cad2program.synth. Training must never render through this path.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_parts_module, png_bytes_to_grey, renderer_main, write_half  # noqa: E402

SET_NAME = "parts-ezdxf"
SEED_BASE = 23001
LONGER_SIDE_PX = 1000


def render_doc(doc, sheet, longer_side_px: int = LONGER_SIDE_PX):
    """A DXF document's modelspace as ezdxf draws it: grey uint8 image of exactly the sheet."""
    from ezdxf.addons.drawing import Frontend, RenderContext, config, layout
    from ezdxf.addons.drawing.pymupdf import PyMuPdfBackend
    from ezdxf.math import BoundingBox2d

    backend = PyMuPdfBackend()
    settings = config.Configuration(background_policy=config.BackgroundPolicy.WHITE,
                                    color_policy=config.ColorPolicy.BLACK,
                                    lineweight_scaling=1.0)
    Frontend(RenderContext(doc), backend, config=settings).draw_layout(doc.modelspace())
    page = layout.Page(sheet.width, sheet.height, layout.Units.mm, margins=layout.Margins.all(0))
    dpi = round(longer_side_px / (max(sheet.width, sheet.height) / 25.4))
    png = backend.get_pixmap_bytes(page, settings=layout.Settings(fit_page=False, scale=1.0), dpi=dpi,
                                   render_box=BoundingBox2d([(0, 0), (sheet.width, sheet.height)]))
    return png_bytes_to_grey(png)


def draw(seed: int):
    from dxf_doc import build_part_dxf

    parts = load_parts_module()
    part = parts.make_part(seed)
    doc = build_part_dxf(part, random.Random(seed + 1))
    label = part.label("", style="parts-ezdxf")
    del label["image"]
    return render_doc(doc, part.sheet), label


def main(argv=None) -> int:
    return renderer_main(argv, __doc__.split("\n\n")[0], SET_NAME,
                         lambda folder, seeds, desc: write_half(folder, seeds, draw, desc), SEED_BASE)


if __name__ == "__main__":
    sys.exit(main())
