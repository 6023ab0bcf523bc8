"""Writes the project's fixed test sets: testsets/{clean,sketch,scan,photo}/, one style each.

    python3 scripts/make_test_sets.py [--out testsets] [--count 100] [--size 512]

Each set is a dataset folder (labels.jsonl + images/) drawn by `write_dataset` from its own seed:
clean 9001, sketch 9002, scan 9003, photo 9004. Training never draws from these streams: on-the-fly
training uses the config's seed (0 by default) plus small offsets (retries add multiples of 7919),
its held-out evaluation stream is seed 1000003 whatever the training seed, and `train --seed`
refuses seeds that would reach any of these streams. The folders are committed, so a benchmark
number stays comparable even when the generator changes later; rerun this script only to make a
new version of the test sets, and say so where numbers are reported.

Size: the generator writes PNGs (clean, sketch) in RGB, and sketch paper texture makes them large
(20.8 MB for 100 sketches at 512 px, measured). The model only ever sees the grey image
`load_image` makes of a file, so this script rewrites each PNG as that very grey image (checked
pixel for pixel), which took the four sets from 26.4 MB to 12.7 MB with all 100 drawings each. JPEGs (scan, photo) are kept byte for byte: re-encoding them would change them.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from cad2program.model.input_pipeline import TEST_SET_SEEDS
from cad2program.synth import GeneratorConfig, write_dataset


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def store_pngs_grey(folder: Path) -> None:
    """Rewrites every PNG under folder/images as the grey image the model reads from it, losslessly."""
    from PIL import Image

    from cad2program.contract.dataset import load_image

    for path in sorted((folder / "images").glob("*.png")):
        seen = load_image(path)
        Image.fromarray(seen, mode="L").save(path, optimize=True)
        if not np.array_equal(load_image(path), seen):
            raise RuntimeError(f"{path}: the grey copy does not read back identically")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "testsets")
    parser.add_argument("--count", type=int, default=100, help="drawings a set (default 100)")
    parser.add_argument("--size", type=int, default=512, help="pixels of each image's longer side (default 512)")
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    total = 0
    for style, seed in TEST_SET_SEEDS.items():
        folder = args.out / style
        if folder.exists():
            shutil.rmtree(folder)  # a set is rewritten whole: no stale images from a bigger run
        write_dataset(folder, args.count, seed, GeneratorConfig(style=style, long_side_px=args.size),
                      workers=args.workers, progress=True)
        store_pngs_grey(folder)
        size = folder_size(folder)
        total += size
        print(f"{folder}: {args.count} {style} drawings, seed {seed}, {size / 1e6:.1f} MB")
    print(f"total {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
