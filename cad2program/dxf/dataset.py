"""A DXF archive as a dataset folder (contract, section 4): read, crop, dimension, render, write, report.

`import_archive(paths, out)` is what `cad2program import-dxf` runs: every file is read
(`dxf_import`), cut into drawings of at most 12 primitives and dimensioned (`dxf_drawings`), and each
drawing rendered in every asked style by the synth renderer. A file that cannot be read costs one line
in the report and nothing else; the others are still imported.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from cad2program.dxf.drawings import Crop, annotated_crop, plan_crops
from cad2program.dxf.importer import DxfError, read_dxf
from cad2program.contract.program import TYPE_NAMES

STYLES = ("clean", "sketch", "scan", "photo")


@dataclasses.dataclass
class FileReport:
    path: Path
    drawings: int = 0
    kept: Counter = dataclasses.field(default_factory=Counter)
    skipped: Counter = dataclasses.field(default_factory=Counter)
    notes: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None

    def line(self) -> str:
        if self.error:
            return f"FAILED {self.error}"
        kept = ", ".join(f"{n} {k}" for k, n in _ordered(self.kept))
        text = f"{self.path}: {self.drawings} drawing{'' if self.drawings == 1 else 's'}; kept {kept or 'nothing'}"
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} {k}" for k, n in self.skipped.most_common())
        if self.notes:
            text += "; " + "; ".join(self.notes)
        return text


def _ordered(counter: Counter):
    types = [(k, counter[k]) for k in TYPE_NAMES if counter[k]]
    return types + [(k, n) for k, n in counter.items() if k not in TYPE_NAMES and n]


def render_crop(crop: Crop, style: str, rng: np.random.Generator, long_side_px: int
                ) -> tuple[bytes, str, list, list]:
    """(file bytes, extension, labelled primitives, annotations) of one crop in one style."""
    from cad2program.synth import render

    content = "sketch" if style == "sketch" else "clean"
    primitives, groups, size, annotations = annotated_crop(crop, rng, content, long_side_px)
    look = render.sample_look(rng, style, content, crop.sheet, long_side_px)
    image, encoded = render.render(rng, crop.sheet, size, groups, look)
    if encoded is not None:
        return encoded, "jpg", primitives, annotations
    ok, buffer = cv2.imencode(".png", image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    return buffer.tobytes(), "png", primitives, annotations


def _stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)[:40] or "drawing"


def import_file(path: Path, number: int, out: Path, styles: Sequence[str], per_file: int | None,
                long_side_px: int, seed: int) -> tuple[FileReport, list[dict]]:
    """Reads one file and writes its drawings' images into out/images; returns its report and label lines."""
    report = FileReport(path)
    try:
        content = read_dxf(path)
    except DxfError as err:
        report.error = str(err)
        return report, []
    report.notes += content.notes
    report.skipped.update(content.skipped)
    crops = plan_crops(content, report.skipped, per_file)
    lines = []
    file_key = zlib.crc32(str(path).encode())
    for crop_index, crop in enumerate(crops):
        for style in styles:
            rng = np.random.default_rng([seed, file_key, crop_index, STYLES.index(style)])
            data, extension, primitives, annotations = render_crop(crop, style, rng, long_side_px)
            if not primitives:
                continue
            key = f"images/{number:05d}-{_stem(path)}-{crop_index:03d}-{style}.{extension}"
            (out / key).write_bytes(data)
            line = {"image": key, "sheet": crop.sheet.to_json(), "primitives": [p.to_json() for p in primitives],
                    "style": style, "source": str(path), "crop": crop_index}
            if crop.scale != 1:
                line["scale"] = crop.scale
            if annotations:
                line["annotations"] = [text for _, _, text in annotations]
            lines.append(line)
            if style == styles[0]:
                lost = len(crop.shapes) - len(primitives)
                if lost:
                    report.skipped["duplicate, or too small for the 0.1 mm grid at the drawing's scale"] += lost
                report.kept.update(p.TYPE for p in primitives)
                report.kept["annotated primitive"] += sum(1 for p in primitives if p.annotated and p.SIZE_FIELDS)
    for key in ("centre or hidden line (drawn, not a primitive)", "dimension"):
        if content.kept[key]:
            report.kept[key] = content.kept[key]
    report.drawings = len(lines)
    if not lines:
        reasons = ", ".join(f"{n} {k}" for k, n in report.skipped.most_common(4)) or "no entity"
        report.error = f"{path}: nothing the contract can hold ({reasons})"
    return report, lines


def import_archive(paths: Sequence[Path], out: Path, styles: Sequence[str] = ("clean", "scan", "photo"),
                   per_file: int | None = None, long_side_px: int = 512, seed: int = 0, progress: bool = True,
                   log: Callable[[str], object] | None = None, append: bool = False) -> list[FileReport]:
    """Imports every file into the dataset folder `out`; returns one report per file, in order."""
    from tqdm import tqdm

    unknown = [s for s in styles if s not in STYLES]
    if unknown or not styles:
        raise ValueError(f"styles {list(styles)}: each must be one of {', '.join(STYLES)}")
    (out / "images").mkdir(parents=True, exist_ok=True)
    reports = []
    bar = tqdm(paths, unit="file", desc="import-dxf", disable=not progress)
    write = log or bar.write
    with open(out / "labels.jsonl", "a" if append else "w", encoding="utf-8") as labels:
        for number, path in enumerate(bar):
            report, lines = import_file(Path(path), number, out, styles, per_file, long_side_px, seed)
            for line in lines:
                labels.write(json.dumps(line, separators=(", ", ": "), ensure_ascii=False) + "\n")
            reports.append(report)
            write(report.line())
    bar.close()
    return reports
