"""Check a dataset folder: every bad line of labels.jsonl with its line number and why, then a summary.

A dataset folder holds labels.jsonl (one JSON object a line: image, sheet, primitives) and the
images it names. Exit status: 0 when every line is good, 1 when any line is bad, 2 when the
folder or its labels.jsonl is missing.
"""

from __future__ import annotations

import argparse
from collections import Counter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="the dataset folder (holding labels.jsonl)")
    parser.add_argument("--no-images", action="store_true",
                        help="check the labels only, not that the images exist and are readable")
    parser.add_argument("--decode", action="store_true",
                        help="decode every image fully, as training does (slower; by default PNGs get a "
                             "checksum walk and JPEGs a reduced-size decode, which also catch truncated files)")
    parser.add_argument("--predictions", action="store_true",
                        help="lines need no 'primitives' (a folder of images to predict on)")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _line_list(numbers: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


def summary_lines(records, check_images: bool) -> list[str]:
    """The summary of the good lines: primitives per type, styles, image sizes, and warnings."""
    from cad2program.contract.program import MAX_PRIMITIVES, TYPE_NAMES

    out = []
    types = Counter(p.TYPE for r in records for p in r.primitives)
    total = sum(types.values())
    if records:
        per_type = ", ".join(f"{name} {types[name]}" for name in TYPE_NAMES if types[name])
        counts = [len(r.primitives) for r in records]
        out.append(f"primitives: {total}" + (f" ({per_type})" if per_type else ""))
        out.append(f"primitives a drawing: {min(counts)} to {max(counts)}, mean {total / len(records):.1f}")
    styles = Counter(str(r.extra["style"]) for r in records if "style" in r.extra)
    if styles:
        out.append("styles: " + ", ".join(f"{s} {n}" for s, n in sorted(styles.items())))
    sizes = [r.image_size for r in records if r.image_size]
    if check_images and sizes:
        widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
        common = Counter(sizes).most_common(1)[0]
        out.append(f"images: widths {min(widths)} to {max(widths)} px, heights {min(heights)} to "
                   f"{max(heights)} px; most common {common[0][0]} x {common[0][1]} ({common[1]})")
    warnings = []
    out_of_scope = [(r.line_number, "; ".join(r.sheet.in_scope_problems()))
                    for r in records if r.sheet.in_scope_problems()]
    if out_of_scope:
        warnings.append(f"{_plural(len(out_of_scope), 'drawing')} on a sheet outside the contract's scope "
                        f"(50 to 500 mm sides, aspect up to 2:1):")
        warnings += [f"  line {n}: {why}" for n, why in out_of_scope[:10]]
        if len(out_of_scope) > 10:
            warnings.append(f"  and {len(out_of_scope) - 10} more")
    too_many = [r.line_number for r in records if len(r.primitives) > MAX_PRIMITIVES]
    if too_many:
        warnings.append(f"{_plural(len(too_many), 'drawing')} with more than {MAX_PRIMITIVES} primitives "
                        f"(out of scope): lines {_line_list(too_many)}")
    empty = [r.line_number for r in records if not r.primitives]
    if empty:
        warnings.append(f"{_plural(len(empty), 'drawing')} with no primitive: lines {_line_list(empty)}")
    # The image shows exactly the sheet (contract, section 1): its sides should have the sheet's ratio.
    skewed = [r.line_number for r in records if r.image_size
              and abs((r.image_size[0] / r.image_size[1]) / (r.sheet.width / r.sheet.height) - 1) > 0.05]
    if skewed:
        warnings.append(f"{_plural(len(skewed), 'image')} whose aspect ratio differs from its sheet's by over 5% "
                        f"(the image should show exactly the sheet): lines {_line_list(skewed)}")
    if warnings:
        out += ["warnings:"] + [f"  {w}" for w in warnings]
    return out


def run(args: argparse.Namespace) -> int:
    from cad2program.contract.dataset import labels_path, load_labels

    path = labels_path(args.folder)
    records, problems = load_labels(args.folder, check_images=not args.no_images,
                                    require_primitives=not args.predictions,
                                    decode_images=args.decode, progress=True)
    for problem in problems:
        print(problem)
    if problems:
        print()
    print(f"{path}: {_plural(len(records), 'drawing')} OK, {_plural(len(problems), 'bad line')}")
    if not records and not problems:
        print("warning: the file holds no drawing")
    for line in summary_lines(records, check_images=not args.no_images):
        print(line)
    return 1 if problems else 0
