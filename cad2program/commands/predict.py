"""Read drawings into programs: images, or a dataset folder, to program text, JSON, DXF or overlays.

PATH is an image (PNG or JPEG, any size, colour or grey) or a folder. A folder holding labels.jsonl
is a dataset folder: each drawing is read with the sheet size its label gives, and the output is a
prediction file (one JSON line a drawing, same 'image' keys) that 'cad2program eval' and scoring
compare with the labels line by line. A folder without labels.jsonl: every image in it, sorted.

The sheet size (mm) tells the model the drawing's scale. Without --sheet or labels, it is inferred:
the image's longer side is taken as 297 mm (an A4 sheet's long side) and the other side follows the
image's aspect ratio (clamped to 2:1). Pass --sheet for the real size.

Formats: program (default for images: the program text, with a '# PATH' line before each one when
there are several), json, jsonl (default for folders), dxf (the primitives as a DXF with dimensions),
svg and png (the primitives over the input image, coloured by confidence). dxf, svg and png need
--out: a file for one image, a folder for several. Without --format, a suffix of --out picks it.

Each JSON line: {"image", "sheet", "primitives", "program", "confidences", "valid", "problems"}.
When the output is not a valid program on its sheet (cut off by the length limit, or off the sheet),
"valid" is false, "primitives" is null (so scoring counts it as the contract says: empty and invalid)
and "program" holds what was read. Reading never depends on the label: in a dataset folder, a drawing
whose label breaks the contract (a bad primitive, a bad sheet) is read all the same, with a 'warning:'
line and a "label_problem" key in its prediction line (a bad sheet: the sheet is inferred). A label
may name only a file inside its folder (no absolute path, no '..'). Exit status 1 when any image could not be read (each gets an
'error: PATH: why' line on stderr; the others are still read), 2 on bad arguments or a missing model.

examples:
  cad2program predict part.png --sheet 200x150
  cad2program predict scans/ --out predictions.jsonl --model runs/cpu
  cad2program predict part.jpg --format svg --out part_overlay.svg
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

from cad2program.commands.reader_options import add_model_arguments, load_recognizer
from cad2program.commands.render import parse_sheet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
TEXT_FORMATS = ("program", "json", "jsonl")
FILE_FORMATS = ("dxf", "svg", "png")
FORMATS = TEXT_FORMATS + FILE_FORMATS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="images, or folders of images (with or without labels.jsonl)")
    add_model_arguments(parser)
    parser.add_argument("--sheet", type=parse_sheet, metavar="WxH",
                        help="sheet size in mm for every image, e.g. 200x150 (default: a dataset folder's "
                             "labels, else inferred: longer side 297 mm, the other from the aspect ratio)")
    parser.add_argument("--format", choices=FORMATS,
                        help="output format (default: from the --out suffix, else program for images "
                             "and jsonl for folders)")
    parser.add_argument("--out", metavar="FILE",
                        help="output file (default: standard output); a folder for dxf/svg/png of several images")


# ----------------------------------------------------------------------------------------------
# What to read
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Job:
    """One drawing to read."""

    key: str  # the 'image' value of its prediction line (relative to a dataset folder)
    path: Path
    sheet: Any = None  # a Sheet, or None: inferred from the image
    name: str = ""  # its output file's name for dxf/svg/png (before the suffix changes): relative, never empty
    label_problem: str | None = None  # 'labels.jsonl:N: why', when its label breaks the contract (read all the same)


@dataclasses.dataclass
class Outcome:
    """One drawing's result: a recognition, or why its image could not be read."""

    job: Job
    image: Any = None  # the grey image (uint8 array), while the outcome is being handled
    recognition: Any = None
    error: str | None = None


def images_in(folder: Path) -> list[Path]:
    """Every image file under a folder (any depth), sorted by relative path."""
    return sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                  key=lambda p: p.relative_to(folder).as_posix())


def folder_jobs(folder: Path, sheet, several: bool, errors: list[str]) -> list[Job]:
    """Jobs for a folder: its labels' drawings (with their sheets), else every image in it."""
    from cad2program.contract.dataset import LABELS_FILE, labels_for_reading

    prefix = f"{folder.as_posix().rstrip('/')}/" if several else ""  # keys stay unique across folders
    if (folder / LABELS_FILE).is_file():
        # Every image a line names is read, whatever else its label holds; a bad label rides along.
        entries, problems = labels_for_reading(folder)
        errors += [f"{folder / problem.file_name}:{problem.line_number}: {problem.message}" for problem in problems]
        # A label's sheet is the truth the prediction is scored against; --sheet only fills in for images without one.
        return [Job(prefix + e.image_key, e.image_path, e.sheet or sheet, e.image_key,
                    f"{folder / LABELS_FILE}:{e.line_number}: {e.label_problem}" if e.label_problem else None)
                for e in entries]
    found = images_in(folder)
    if not found:
        from cad2program.errors import UserError
        raise UserError(f"{folder}: no labels.jsonl and no image in it ({', '.join(IMAGE_SUFFIXES)})")
    return [Job(prefix + p.relative_to(folder).as_posix(), p, sheet, p.relative_to(folder).as_posix()) for p in found]


def collect_jobs(paths: Iterable[str], sheet) -> tuple[list[Job], list[str], bool]:
    """(jobs, problems with the inputs, whether any PATH is a folder). A missing PATH is a problem, not a stop."""
    paths = list(paths)
    jobs: list[Job] = []
    errors: list[str] = []
    any_folder = False
    for text in paths:
        path = Path(text)
        if path.is_dir():
            any_folder = True
            jobs += folder_jobs(path, sheet, len(paths) > 1, errors)
        else:
            jobs.append(Job(text, path, sheet, path.name))  # a missing file is reported when it is loaded
    return jobs, errors, any_folder


# ----------------------------------------------------------------------------------------------
# Reading in batches
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
    """Where the time went: compiling the model for the batch sizes used, loading images, recognising them."""

    drawings: int = 0
    batches: int = 0
    batch_size: int = 0
    compile_seconds: float = 0.0
    load_seconds: float = 0.0
    recognize_seconds: float = 0.0

    def to_json(self) -> dict:
        per_drawing = (lambda seconds: round(1000 * seconds / self.drawings, 1) if self.drawings else None)
        return {"drawings": self.drawings, "batches": self.batches,
                "compile_seconds": round(self.compile_seconds, 3), "load_seconds": round(self.load_seconds, 3),
                "recognize_seconds": round(self.recognize_seconds, 3),
                # Compiled beforehand, so these are steady-state figures.
                "ms_per_drawing": per_drawing(self.load_seconds + self.recognize_seconds),
                "recognize_ms_per_drawing": per_drawing(self.recognize_seconds)}

    def summary(self) -> str:
        if not self.drawings:
            return "no drawing was recognised"
        info = self.to_json()
        return (f"{_plural(self.drawings, 'drawing')} in {self.load_seconds + self.recognize_seconds:.1f} s: "
                f"{info['ms_per_drawing']:.0f} ms a drawing (images {1000 * self.load_seconds / self.drawings:.0f} ms, "
                f"recognition {info['recognize_ms_per_drawing']:.0f} ms), batches of up to {self.batch_size}, "
                f"after {self.compile_seconds:.1f} s compiling")


def warm_up(recognizer, counts: Iterable[int], batch_size: int, timing: Timing | None = None) -> None:
    """Compiles the model for every batch shape that reading `counts` drawings in `batch_size` chunks uses,
    so that the timed run measures recognition alone (the compilation would happen in it anyway)."""
    import numpy as np

    from cad2program.contract.program import Sheet
    from cad2program.reading import BATCH_BUCKETS

    done = getattr(recognizer, "_warm_buckets", set())
    sizes = {min(batch_size, n) for n in counts if n} | {n % batch_size for n in counts if n % batch_size}
    start = time.perf_counter()
    for size in sorted(sizes):
        bucket = next((b for b in BATCH_BUCKETS if b >= size), size)
        if bucket not in done:
            blank = np.full((64, 64), 255, np.uint8)
            recognizer.recognize([blank] * size, [Sheet(100, 100)] * size)
            done.add(bucket)
    recognizer._warm_buckets = done
    if timing is not None:
        timing.compile_seconds += time.perf_counter() - start


def _load(job: Job) -> Outcome:
    from cad2program.contract.dataset import ImageError, load_image

    try:
        return Outcome(job, image=load_image(job.path))
    except ImageError as err:
        return Outcome(job, error=err.reason)


def recognize_jobs(recognizer, jobs: list[Job], batch_size: int, timing: Timing | None = None,
                   progress: bool = True, desc: str = "predict") -> Iterator[Outcome]:
    """Outcomes in job order, recognised `batch_size` at a time; images of the next batch load meanwhile."""
    from tqdm import tqdm

    timing = timing if timing is not None else Timing()
    timing.batch_size = batch_size
    chunks = [jobs[i:i + batch_size] for i in range(0, len(jobs), batch_size)]
    bar = tqdm(total=len(jobs), unit="drawing", desc=desc, disable=None if progress else True, file=sys.stderr)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = pool.submit(lambda c: list(map(_load, c)), chunks[0]) if chunks else None
        for index in range(len(chunks)):
            start = time.perf_counter()
            outcomes = pending.result()
            timing.load_seconds += time.perf_counter() - start
            if index + 1 < len(chunks):  # decode the next images while the model works
                pending = pool.submit(lambda c: list(map(_load, c)), chunks[index + 1])
            readable = [o for o in outcomes if o.error is None]
            if readable:
                start = time.perf_counter()
                results = recognizer.recognize([o.image for o in readable], [o.job.sheet for o in readable])
                seconds = time.perf_counter() - start
                for outcome, recognition in zip(readable, results):
                    outcome.recognition = recognition
                timing.recognize_seconds += seconds
                timing.batches += 1
                timing.drawings += len(readable)
            bar.update(len(outcomes))
            yield from outcomes
    bar.close()


def prediction_line(key: str, recognition) -> dict:
    """A prediction file's line for one drawing (see the module docstring): what scoring reads, and more."""
    return {"image": key, "sheet": recognition.sheet.to_json(),
            "primitives": [p.to_json() for p in recognition.primitives] if recognition.valid else None,
            "program": recognition.program,
            # Beside the primitives, not inside them: scoring rejects unknown fields in a primitive.
            "confidences": [round(c, 4) for c in recognition.confidences],
            "valid": recognition.valid, "problems": recognition.problems}


def job_line(job: Job, recognition) -> dict:
    """The prediction line, with the label's problem beside it when it has one (scoring ignores the key)."""
    line = prediction_line(job.key, recognition)
    if job.label_problem:
        line["label_problem"] = job.label_problem
    return line




# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def choose_format(args: argparse.Namespace, any_folder: bool) -> str:
    if args.format:
        return args.format
    suffix = Path(args.out).suffix.lower().lstrip(".") if args.out else ""
    if suffix in FORMATS and suffix != "program":
        return suffix
    return "jsonl" if any_folder else "program"


class TextSink:
    """Standard output, or --out written safely (`outfile.OutputFile`: in place for a device or pipe,
    else a temporary file renamed over it at the end, never half a file)."""

    def __init__(self, out: str | None):
        from cad2program.outfile import OutputFile

        self.file = OutputFile(out) if out else None

    def write(self, text: str) -> None:
        if self.file is None:
            sys.stdout.write(text)
            sys.stdout.flush()  # a pipe reader sees each drawing as soon as it is read
        else:
            self.file.write(text)

    def close(self, complete: bool = True) -> None:
        """Puts the file in place; `complete=False` (the run failed) drops it instead."""
        if self.file is not None:
            self.file.commit() if complete else self.file.abort()


def output_files(jobs: list[Job], out: Path, fmt: str, single: bool) -> dict[int, Path]:
    """Where each job's dxf/svg/png goes: `out` itself for one image, else a file per image in folder `out`."""
    if single and not out.is_dir():
        return {0: out}
    names: dict[int, Path] = {}
    taken: set[str] = set()
    for index, job in enumerate(jobs):
        # Labels may name images as "../x.png" or "/abs/x.png": outputs stay inside the folder all the same.
        parts = [part for part in Path(job.name).parts if part not in ("..", ".", "/") and not Path(part).anchor]
        relative = Path(*(parts or [job.path.name])).with_suffix(f".{fmt}")
        name, number = relative.as_posix(), 2
        while name in taken:  # two inputs with the same name (a/x.png, b/x.png)
            name = relative.with_name(f"{relative.stem}_{number}{relative.suffix}").as_posix()
            number += 1
        taken.add(name)
        names[index] = out / name
    return names


def drawing_bytes(outcome: Outcome, fmt: str) -> bytes:
    """DXF of the recognised primitives, or the overlay of them over the input image."""
    from cad2program.outputs import dxf_bytes, overlay
    from cad2program.contract.program import program_problems

    recognition = outcome.recognition
    # Values the outputs cannot draw (a zero radius) are left out; points off the sheet are still drawn.
    keep = [i for i, p in enumerate(recognition.primitives) if not program_problems([p])]
    primitives = [recognition.primitives[i] for i in keep]
    if fmt == "dxf":
        return dxf_bytes(primitives, recognition.sheet)
    return overlay(outcome.image, primitives, recognition.sheet, [recognition.confidences[i] for i in keep], fmt)


def first_problems(problems: list[str], shown: int = 3) -> str:
    """The first few problems, and how many more: one readable line."""
    text = "; ".join(problems[:shown])
    return text + (f"; and {len(problems) - shown} more" if len(problems) > shown else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def run(args: argparse.Namespace) -> int:
    from cad2program.errors import UserError
    from cad2program.outfile import output_problem, write_output

    jobs, errors, any_folder = collect_jobs(args.paths, args.sheet)
    fmt = choose_format(args, any_folder)
    single = len(args.paths) == 1 and not any_folder
    if fmt in FILE_FORMATS:
        if not args.out:
            raise UserError(f"--format {fmt} needs --out (a file for one image, a folder for several)")
        out = Path(args.out)
        if not single:
            if out.exists() and not out.is_dir():
                raise UserError(f"--out {out}: several images need a folder here, and this is a file")
            out.mkdir(parents=True, exist_ok=True)
        elif not out.is_dir() and output_problem(out):
            raise UserError(output_problem(out))
    elif args.out and output_problem(args.out):
        raise UserError(output_problem(args.out))
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if args.sheet is not None:
        for problem in args.sheet.in_scope_problems():
            print(f"warning: --sheet: {problem} (outside what the model was trained on)", file=sys.stderr)
    if args.sheet is not None and any(job.sheet not in (None, args.sheet) for job in jobs):
        print("note: drawings of a dataset folder are read with the sheet sizes of its labels, not --sheet",
              file=sys.stderr)
    if any(job.sheet is None for job in jobs):
        print("note: no sheet size given: each image's longer side is taken as 297 mm and the other follows its "
              "aspect ratio (pass --sheet WxH for the real size)", file=sys.stderr)

    recognizer = load_recognizer(args) if jobs else None
    files = output_files(jobs, Path(args.out), fmt, single) if fmt in FILE_FORMATS else {}
    sink = TextSink(args.out) if fmt in TEXT_FORMATS else None
    json_items: list[dict] = []
    failed = 0
    complete = False
    try:
        outcomes = recognize_jobs(recognizer, jobs, args.batch_size, progress=len(jobs) > 1) if jobs else []
        for index, outcome in enumerate(outcomes):
            if outcome.job.label_problem:
                print(f"warning: {outcome.job.label_problem} (the drawing is read all the same"
                      f"{'' if outcome.job.sheet else ', on a sheet inferred from the image'})", file=sys.stderr)
            if outcome.error is not None:
                failed += 1
                print(f"error: {outcome.job.path}: {outcome.error}", file=sys.stderr)
                continue
            recognition = outcome.recognition
            if not recognition.valid and fmt == "program":
                print(f"warning: {outcome.job.key}: not a valid program on the "
                      f"{recognition.sheet.width:g} x {recognition.sheet.height:g} mm sheet: "
                      + first_problems(recognition.problems), file=sys.stderr)
            if fmt == "program":
                header = f"# {outcome.job.key}\n" if len(jobs) > 1 or not single else ""
                sink.write(header + recognition.program + ("\n" if len(jobs) > 1 else ""))
            elif fmt == "jsonl":
                sink.write(json.dumps(job_line(outcome.job, recognition), ensure_ascii=False) + "\n")
            elif fmt == "json":
                json_items.append(job_line(outcome.job, recognition))
            else:
                path = files[index]
                path.parent.mkdir(parents=True, exist_ok=True)
                data = drawing_bytes(outcome, fmt)
                write_output(path, data)
                print(f"wrote {path}: {_plural(len(recognition.primitives), 'primitive')}"
                      f"{'' if recognition.valid else ' (not a valid program: ' + first_problems(recognition.problems) + ')'}")
            outcome.image = None  # images are not kept past their drawing
        if fmt == "json":
            payload = json_items[0] if single and json_items else json_items
            sink.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        complete = True
    finally:
        if sink is not None:
            sink.close(complete)
        if recognizer is not None:
            recognizer.close()
    if args.out and fmt in ("jsonl", "json"):
        done = len(jobs) - failed
        print(f"wrote {args.out}: {_plural(done, 'prediction')}", file=sys.stderr)
    problems = failed + len(errors)
    if problems:
        print(f"{_plural(problems, 'drawing')} could not be read (see the errors above)", file=sys.stderr)
    return 1 if problems else 0
