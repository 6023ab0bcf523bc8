"""Builds testsets/battery/real-librecad/{dev,test}: real drawings from Debian's librecad part library.

    apt-get install -y librecad && pip install pymupdf
    python3 scripts/battery/make_real_librecad.py            # writes testsets/battery/real-librecad

What people drew, not what cad2program generates: the DXF files of LibreCAD's library (plan/ and
power_station/: building-plan and power-engineering symbols and parts). Each set is a contract dataset
folder (labels.jsonl + images/), for scoring only; never train or tune on it.

- Labels: the geometry as `cad2program import-dxf` reads it (`dxf_import.read_dxf`, the same sheet
  and drafting scale as `dxf_drawings.plan_crops`), geometry only: every primitive carries
  `"annotated": false` (the files write no sizes the set checks). Files with more than 12
  primitives are skipped, not cropped: an image of the file shows all of it, and a crop's image would
  show unlabelled neighbours. Files with geometry the contract cannot hold (splines, ellipses, 3D
  entities, parts that could not be read) are skipped too, so every line of ink that is geometry is in
  the label; text, hatching, points and centre lines stay in the image as the contract's non-geometry.
- Images: the DXF file itself drawn by ezdxf's drawing add-on (PyMuPDF backend), black on white,
  never through cad2program.synth. Every other file's drawing is then "scanned" by this script's own
  small degradation (paper tint, a slight rotation, blur, noise, JPEG).
- dev / test: split by source file (no file in both), alternating in sorted order.

RESERVED: library folders kinetics/, elektro/, algoritm/, misc/ and block/ are kept for the team's
independent evaluation; this script never opens them (they are pruned from the walk by name).
sheets/ (title blocks and frames: no part geometry) and templates/ are left out as well.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

LIBRARY = Path("/usr/share/librecad/library")
RESERVED = frozenset({"kinetics", "elektro", "algoritm", "misc", "block"})
LEFT_OUT = frozenset({"sheets", "templates"})  # frames and title blocks, an empty template
# Skip reasons (from dxf_import) that mean the file holds geometry its label would miss.
UNLABELLED_GEOMETRY = ("spline", "ellipse", "3D entity", "could not be read", "cannot be exploded", "absurd",
                       "nested over")


def library_files(root: Path) -> list[Path]:
    """Every DXF file under `root`, the reserved folders pruned before they are ever listed."""
    found = []
    for folder, subfolders, files in os.walk(root):
        if Path(folder) == root:
            subfolders[:] = sorted(d for d in subfolders if d not in RESERVED and d not in LEFT_OUT)
        else:
            subfolders[:] = sorted(d for d in subfolders if d not in RESERVED)
        found += [Path(folder) / f for f in sorted(files) if f.lower().endswith(".dxf")]
    return sorted(found)


def render_file(path: Path, region: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """The DXF file's modelspace inside `region` (file units: x0, y0, x1, y1) as ezdxf draws it: grey uint8."""
    import ezdxf
    from ezdxf.addons.drawing import Frontend, RenderContext, config, layout
    from ezdxf.addons.drawing.pymupdf import PyMuPdfBackend
    from ezdxf.math import BoundingBox2d

    doc = ezdxf.readfile(path)
    backend = PyMuPdfBackend()
    colours = config.Configuration(background_policy=config.BackgroundPolicy.WHITE,
                                   color_policy=config.ColorPolicy.BLACK)
    Frontend(RenderContext(doc), backend, config=colours).draw_layout(doc.modelspace())
    x0, y0, x1, y1 = region
    # The page has the region's aspect, so fitting the region onto it maps it exactly onto the page.
    page = layout.Page(size[0] / 4.0, size[1] / 4.0, layout.Units.mm, margins=layout.Margins.all(0))
    png = backend.get_pixmap_bytes(page, settings=layout.Settings(fit_page=True), dpi=round(4 * 25.4),
                                   render_box=BoundingBox2d([(x0, y0), (x1, y1)]))
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    if image.shape[::-1] != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def scanned(image: np.ndarray, rng: np.random.Generator) -> bytes:
    """This script's own flatbed-scan look: tint, slight rotation, blur, noise, JPEG bytes."""
    h, w = image.shape
    rgb = np.repeat(image[..., None].astype(np.float32), 3, axis=2)
    tint = np.array([rng.uniform(0.94, 1.0), rng.uniform(0.92, 0.98), rng.uniform(0.84, 0.94)], np.float32)
    rgb = 255.0 - (255.0 - rgb) * rng.uniform(0.75, 0.95)  # toner a little grey
    rgb *= tint
    angle = rng.uniform(-0.8, 0.8)  # moves points by < 0.8% of the sheet: well inside the 2% tolerance
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    rgb = cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
    rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(0.5, 1.1))
    rgb += rng.normal(0.0, rng.uniform(3, 8), (h, w, 1)).astype(np.float32)
    ok, data = cv2.imencode(".jpg", np.clip(rgb, 0, 255).astype(np.uint8)[..., ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 75))])
    assert ok
    return data.tobytes()


def label_for(path: Path):
    """(sheet, primitives, region in file units, why not) for one library file."""
    from cad2program.dxf.drawings import plan_crops, to_primitive
    from cad2program.dxf.importer import DxfError, read_dxf
    from cad2program.contract.program import MAX_PRIMITIVES, unannotated

    try:
        content = read_dxf(path)
    except DxfError as err:
        return None, None, None, f"unreadable ({err})"
    missed = [k for k in content.skipped if any(word in k for word in UNLABELLED_GEOMETRY)]
    if missed:
        return None, None, None, f"geometry the contract cannot hold ({', '.join(missed)})"
    if not content.shapes:
        return None, None, None, "no geometry"
    if len(content.shapes) > MAX_PRIMITIVES:
        return None, None, None, f"more than {MAX_PRIMITIVES} primitives"
    content.dimensions = []  # the file's dimensions are ezdxf's ink here; they do not move the sheet
    crops = plan_crops(content, Counter())
    if len(crops) != 1:
        return None, None, None, "no drafting scale fits"
    crop = crops[0]
    primitives = []
    for shape in crop.shapes:
        primitive = to_primitive(shape, crop.sheet)
        if primitive is None:
            return None, None, None, "a primitive too small for the 0.1 mm grid at the drawing's scale"
        if primitive not in primitives:
            primitives.append(unannotated(primitive))
    # Sheet mm -> file units: plan_crops maps x -> x * unit * scale + dx; invert it at the sheet's corners.
    factor = content.unit_mm * crop.scale
    dx, dy = crop.offset
    region = (-dx / factor, -dy / factor, (crop.sheet.width - dx) / factor, (crop.sheet.height - dy) / factor)
    return crop.sheet, primitives, region, None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=LIBRARY)
    parser.add_argument("--out", type=Path, default=Path("testsets/battery/real-librecad"))
    parser.add_argument("--longer-side", type=int, default=800, help="image size in pixels (default 800)")
    parser.add_argument("--per-split", type=int, default=60, help="drawings in each of dev and test (default 60)")
    args = parser.parse_args(argv)
    try:
        import pymupdf  # noqa: F401
    except ImportError:
        raise SystemExit("error: this script needs PyMuPDF for ezdxf's raster backend: pip install pymupdf")
    if not args.library.is_dir():
        raise SystemExit(f"error: {args.library} not found: apt-get install -y librecad")
    from tqdm import tqdm

    from cad2program.synth import image_size

    files = library_files(args.library)
    usable, reasons = [], Counter()
    for path in tqdm(files, desc="labels", unit="file"):
        sheet, primitives, region, why = label_for(path)
        if why:
            reasons[why.split(" (")[0]] += 1
        else:
            usable.append((path, sheet, primitives, region))
    splits = {"dev": usable[0::2][:args.per_split], "test": usable[1::2][:args.per_split]}
    rng = np.random.default_rng(23)
    for name, items in splits.items():
        folder = args.out / name
        (folder / "images").mkdir(parents=True, exist_ok=True)
        lines = []
        for number, (path, sheet, primitives, region) in enumerate(tqdm(items, desc=name, unit="drawing")):
            size = image_size(sheet, args.longer_side)
            image = render_file(path, region, size)
            if number % 2 == 0:
                key, style = f"images/{number:04d}.png", "librecad-clean"
                Image.fromarray(image).save(folder / key, optimize=True)
            else:
                key, style = f"images/{number:04d}.jpg", "librecad-scan"
                (folder / key).write_bytes(scanned(image, rng))
            lines.append({"image": key, "sheet": sheet.to_json(), "primitives": [p.to_json() for p in primitives],
                          "style": style, "source": str(path.relative_to(args.library))})
        with open(folder / "labels.jsonl", "w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps(line, separators=(", ", ": ")) + "\n")
        print(f"{folder}: {len(lines)} drawings")
    print(f"{len(files)} library files read, {len(usable)} usable; left out: "
          + ", ".join(f"{n} {why}" for why, n in reasons.most_common()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
