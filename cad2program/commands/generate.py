"""Generate synthetic technical drawings with exact labels, as a dataset folder.

Writes DIR/images/ and DIR/labels.jsonl (one line a drawing: image, sheet, primitives, style).
The same --seed gives the same files, whatever the number of workers.

example:
  cad2program generate --out data/synth --count 1000 --seed 0 --style mixed --size 512
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from cad2program.errors import UserError

STYLE_CHOICES = ("clean", "sketch", "scan", "photo", "mixed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="the dataset folder to write")
    parser.add_argument("--count", required=True, type=int, metavar="N", help="how many drawings")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="the stream's seed (default 0)")
    parser.add_argument("--style", choices=STYLE_CHOICES, default="mixed",
                        help="clean CAD output, hand sketch, scan, phone photo, or a mix of all four (default)")
    parser.add_argument("--size", type=int, default=512, metavar="PX",
                        help="pixels of each image's longer side (default 512)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes to render with (default: one per core)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty folder")


def run(args: argparse.Namespace) -> int:
    from cad2program.synth import GeneratorConfig, write_dataset

    if args.count < 1:
        raise UserError(f"--count must be at least 1, got {args.count}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if not 32 <= args.size <= 4096:
        raise UserError(f"--size must be between 32 and 4096 pixels, got {args.size}")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not args.overwrite:
            raise UserError(f"--out {out} already exists and is not empty; choose another folder or add "
                            f"--overwrite to replace it")
        shutil.rmtree(out)
    config = GeneratorConfig(style=args.style, long_side_px=args.size)
    write_dataset(out, args.count, args.seed, config, workers=args.workers, progress=True)
    print(f"wrote {args.count} drawings to {out} (labels.jsonl + images/)")
    return 0
