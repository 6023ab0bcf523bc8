"""Writes docs/contact_sheet.png: 20 generated drawings per style, one block of thumbnails per style.

    python3 scripts/contact_sheet.py [--out docs/contact_sheet.png] [--seed 0] [--per-style 20]
        [--thumb 180] [--columns 10] [--full-dir DIR]

--full-dir also saves every drawing at full resolution (512 px), for looking at them closely.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from cad2program.synth import STYLES, GeneratorConfig, make_example

BACKDROP = 110  # grey between the thumbnails, so white paper shows its edges
HEADER = 26


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """The drawing scaled to fit a size x size cell, centred on the backdrop."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    cell = np.full((size, size, 3), BACKDROP, np.uint8)
    y0, x0 = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    cell[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    return cell


def style_block(style: str, seed: int, count: int, size: int, columns: int, full_dir: Path | None) -> np.ndarray:
    config = GeneratorConfig(style=style, long_side_px=512)
    cells = []
    for index in range(count):
        example = make_example(seed, index, config)
        if full_dir is not None:
            cv2.imwrite(str(full_dir / f"{style}_{index:02d}.png"), example.image[..., ::-1])
        cells.append(thumbnail(example.image, size))
    while len(cells) % columns:
        cells.append(np.full((size, size, 3), BACKDROP, np.uint8))
    gap = 4
    rows = []
    for start in range(0, len(cells), columns):
        row = []
        for cell in cells[start:start + columns]:
            row += [cell, np.full((size, gap, 3), BACKDROP, np.uint8)]
        rows += [np.hstack(row[:-1]), np.full((gap, columns * (size + gap) - gap, 3), BACKDROP, np.uint8)]
    body = np.vstack(rows[:-1])
    header = np.full((HEADER, body.shape[1], 3), 255, np.uint8)
    cv2.putText(header, style, (6, HEADER - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.65, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([header, body, np.full((gap * 2, body.shape[1], 3), 255, np.uint8)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/contact_sheet.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-style", type=int, default=20)
    parser.add_argument("--thumb", type=int, default=180, help="thumbnail size in pixels")
    parser.add_argument("--columns", type=int, default=10)
    parser.add_argument("--full-dir", type=Path, default=None, help="also save every drawing at full size here")
    args = parser.parse_args()
    if args.full_dir is not None:
        args.full_dir.mkdir(parents=True, exist_ok=True)
    blocks = [style_block(style, args.seed, args.per_style, args.thumb, args.columns, args.full_dir)
              for style in STYLES]
    sheet = np.vstack(blocks)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({sheet.shape[1]} x {sheet.shape[0]} px, {args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
