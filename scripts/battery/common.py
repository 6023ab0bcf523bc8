"""The battery's own helpers: seeds, dev/test folders, writing a set, overlaying labels to check one.

Every set of the battery is `testsets/battery/<set>/{dev,test}/`, each a contract dataset folder
(labels.jsonl + images/). The dev half is where decisions are made; the test half is only reported.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cad2program.contract.dataset import load_labels, write_labels  # noqa: E402
from cad2program.contract.program import Arc, Circle, Line, Polyline, Rectangle  # noqa: E402

BATTERY = REPO / "testsets" / "battery"
HALVES = ("dev", "test")
PER_HALF = 50


def set_seeds(base: int, half: str, count: int = PER_HALF) -> list[int]:
    """Per-drawing seeds of one half: disjoint between halves and sets (base is the set's own)."""
    offset = 0 if half == "dev" else 500
    return [base * 10_000 + offset + i for i in range(count)]


def save_image(image: np.ndarray | Image.Image | bytes, path: Path, jpeg_quality: int | None = None):
    """PNG (optimised, grey when the image is), JPEG at the quality given, or encoded bytes as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
        return
    image = image if isinstance(image, Image.Image) else Image.fromarray(image)
    if jpeg_quality:
        image.convert("RGB").save(path, quality=jpeg_quality, optimize=True)
    else:
        image.save(path, optimize=True)


def write_half(out: Path, seeds: Iterable[int], draw: Callable[[int], tuple[object, dict]], desc: str,
               extension: str = "png", jpeg_quality: int | None = None) -> int:
    """Draws one half: `draw(seed)` -> (image, label without its image key); writes images + labels.jsonl."""
    lines = []
    for number, seed in enumerate(tqdm(list(seeds), desc=desc)):
        image, label = draw(seed)
        key = f"images/{number:04d}.{extension}"
        save_image(image, out / key, jpeg_quality)
        lines.append({"image": key, **label, "seed": seed})
    write_labels(out / "labels.jsonl", lines)
    return len(lines)


def png_bytes_to_grey(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def overlay(folder: Path, out: Path, count: int = 4):
    """Draws each label in red over its image (thin lines) for the first `count` drawings of a folder."""
    records, problems = load_labels(folder)
    if problems:
        raise SystemExit(f"{folder}: {len(problems)} bad label lines, first: {problems[0]}")
    out.mkdir(parents=True, exist_ok=True)
    for record in records[:count]:
        image = Image.open(record.image_path).convert("RGB")
        sx, sy = image.width / record.sheet.width, image.height / record.sheet.height

        def px(x, y):
            return (x * sx, image.height - y * sy)

        draw = ImageDraw.Draw(image)
        red = (255, 0, 0)
        for p in record.primitives:
            if isinstance(p, Line):
                draw.line([px(p.x1, p.y1), px(p.x2, p.y2)], fill=red, width=1)
            elif isinstance(p, Rectangle):
                draw.line([px(p.x, p.y), px(p.x + p.width, p.y), px(p.x + p.width, p.y + p.height),
                           px(p.x, p.y + p.height), px(p.x, p.y)], fill=red, width=1)
            elif isinstance(p, (Circle, Arc)):
                start, end = (0, 360) if isinstance(p, Circle) else (p.start_angle, p.end_angle)
                end = end + 360 if end <= start else end
                ts = np.radians(np.linspace(start, end, 90))
                draw.line([px(p.x + p.radius * np.cos(t), p.y + p.radius * np.sin(t)) for t in ts], fill=red, width=1)
            elif isinstance(p, Polyline):
                draw.line([px(x, y) for x, y in p.path()], fill=red, width=1)
        image.save(out / f"{folder.parent.name}-{folder.name}-{Path(record.image_key).stem}.png")


def load_parts_module():
    """The part generator, importable from the scripts/battery folder wherever a script runs from."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    import parts
    return parts



def renderer_main(argv, description: str, set_name: str, write_one_half: Callable[[Path, list[int], str], int],
                  seed_base: int) -> int:
    """The command line every renderer shares: --out, --per-half, --overlay; both halves written by
    `write_one_half(folder, seeds, progress description)`, which returns the number written."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=BATTERY / set_name, help="the set's folder")
    parser.add_argument("--per-half", type=int, default=PER_HALF, help=f"drawings in each half (default {PER_HALF})")
    parser.add_argument("--overlay", type=Path, help="also write label overlays of 4 drawings a half here")
    args = parser.parse_args(argv)
    for half in HALVES:
        n = write_one_half(args.out / half, set_seeds(seed_base, half, args.per_half), f"{set_name} {half}")
        print(f"{n} drawings written to {args.out / half}")
        if args.overlay:
            overlay(args.out / half, args.overlay)
    return 0
