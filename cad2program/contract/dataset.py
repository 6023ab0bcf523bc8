"""Dataset folders (shared/spec/drawings.md, section 4): reading labels and images, and saying what is wrong.

    my_drawings/
      labels.jsonl    {"image": "images/0001.png", "sheet": {...}, "primitives": [...]} one a line
      images/...      PNG or JPEG, any size

`load_labels` keeps every good line and reports every bad one with its 1-based line number and the
reason, so that `cad2program check`, training and evaluation agree on what a folder holds and nothing
is dropped silently. `load_image` turns any readable image into the grey uint8 array the model sees.

Image checks while loading labels (`check_images=True`) are cheap but catch truncated files:
the header is read (format, size) and then
- PNG: `verify()` walks every chunk and checks its CRC, without inflating the pixels;
- JPEG: the entropy-coded data is decoded at 1/8 scale (`draft`), which reads the whole stream;
- other formats: a full decode.
`decode_images=True` (the `check --decode` flag) decodes every image fully, exactly as training does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import json
import posixpath
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from cad2program.errors import UserError
from cad2program.contract.program import (Primitive, ProgramError, Sheet, loads_json, primitives_from_json,
                                          program_problems)

LABELS_FILE = "labels.jsonl"
DEFAULT_MAX_PIXELS = 50_000_000
REQUIRED_KEYS = ("image", "sheet", "primitives")


class ImageError(UserError):
    """An image that cannot be read; the message says which file and why (`reason`: just why)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def _fail(what: str, reason: str) -> ImageError:
    return ImageError(f"{what}: {reason}", reason)


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


def _describe(source: str | Path | bytes) -> str:
    return f"image ({len(source)} bytes)" if isinstance(source, (bytes, bytearray)) else f"image {source}"


def _open_image(source: str | Path | bytes, max_pixels: int):
    """Opens the header only (Pillow is lazy) and refuses empty files and decompression bombs."""
    from PIL import Image, UnidentifiedImageError

    what = _describe(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.exists():
            raise _fail(what, "file not found")
        if path.is_dir():
            raise _fail(what, "is a folder, not an image file")
        try:
            data = path.read_bytes()
        except OSError as err:
            raise _fail(what, f"cannot read: {err.strerror or err}") from None
    if not data:
        raise _fail(what, "the file is empty")
    try:
        with warnings.catch_warnings():
            # We check the pixel count ourselves below, against max_pixels.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise _fail(what, f"refused as a decompression bomb: {err}") from None
    except UnidentifiedImageError:
        raise _fail(what, "not an image Pillow can read (expected PNG or JPEG)") from None
    except Exception as err:  # Pillow raises many types (SyntaxError, struct.error, ...) on bad headers
        raise _fail(what, f"unreadable image header: {err}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise _fail(what, f"the image has no pixels ({width} x {height})")
    if width * height > max_pixels:
        raise _fail(what, f"{width} x {height} pixels is over the limit of {max_pixels:,} pixels "
                         f"(refused before decoding, as a possible decompression bomb)")
    return image


def _to_grey(image) -> np.ndarray:
    """Any Pillow mode -> uint8 grey; alpha is composited on white, 16/32-bit grey is scaled down."""
    from PIL import Image

    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        values = np.asarray(image).astype(np.float64)
        # 16-bit PNGs hold 0..65535; mode "I" is how some readers hold the same data in 32 bits.
        return np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
    if mode == "F":
        values = np.asarray(image).astype(np.float64)
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(values * scale), 0, 255).astype(np.uint8)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode not in ("L", "RGB", "RGBA", "P", "1", "CMYK", "YCbCr"):
        image = image.convert("RGB")  # LAB, HSV and the like have no direct path to L
    return np.asarray(image.convert("L"), dtype=np.uint8)


class PixelBudget:
    """Bounds the pixels being decoded at once across threads (a server's decode pool).

    A decode holds its image's pixel count (from the header) until it is done; one that would take
    the total over `total` waits for others to finish. An image larger than the whole budget still
    runs, alone. `hold` raises TimeoutError after `timeout_s` of waiting.
    """

    def __init__(self, total: int):
        import threading

        self.total, self.used = int(total), 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, pixels: int, timeout_s: float | None = None):
        pixels = min(int(pixels), self.total)
        with self._changed:
            if not self._changed.wait_for(lambda: self.used + pixels <= self.total, timeout_s):
                raise TimeoutError(f"waited {timeout_s:g} s for {self.used:,} pixels of other images to be decoded")
            self.used += pixels
        try:
            yield
        finally:
            with self._changed:
                self.used -= pixels
                self._changed.notify_all()


def _shrunk(grey: np.ndarray, work_pixels: int) -> np.ndarray:
    """`grey` scaled down (area averaging, aspect kept) to at most `work_pixels` pixels."""
    import cv2

    h, w = grey.shape
    scale = math.sqrt(work_pixels / (w * h))
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def load_image(source: str | Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, work_pixels: int | None = None,
               budget: PixelBudget | None = None, budget_timeout_s: float | None = None) -> np.ndarray:
    """A PNG, JPEG (or any Pillow-readable) image -> uint8 grey array (H, W), upright per its EXIF tag.

    Raises ImageError (never a Pillow exception) for a missing, empty, non-image, truncated or
    too large file; the pixel count is checked from the header, before anything is decoded.
    `work_pixels`: an image with more pixels is scaled down to that many (aspect kept) as it is
    decoded: a JPEG is decoded at a reduced scale to begin with, anything else right after decoding,
    so what is kept and worked on is bounded by pixels, not by the file. `budget`: decodes wait for
    their pixels there (TimeoutError after `budget_timeout_s`).
    """
    from PIL import ImageOps

    what = _describe(source)
    image = _open_image(source, max_pixels)
    width, height = image.size
    holding = budget.hold(width * height, budget_timeout_s) if budget is not None else contextlib.nullcontext()
    with holding:
        try:
            if work_pixels and width * height > work_pixels and image.format == "JPEG":
                scale = math.sqrt(work_pixels / (width * height))  # draft decodes at 1/2, 1/4 or 1/8, no smaller
                image.draft("L" if image.mode in ("L", "RGB") else None, (int(width * scale), int(height * scale)))
            image.load()  # Pillow decodes lazily: a truncated file only fails here
            image = ImageOps.exif_transpose(image)  # phone photos store "rotate me" as a tag
            grey = _to_grey(image)
            del image
            return _shrunk(grey, work_pixels) if work_pixels and grey.size > work_pixels else grey
        except MemoryError:
            raise _fail(what, "not enough memory to decode it") from None
        except Exception as err:
            raise _fail(what, f"cannot decode (truncated or corrupt file): {err}") from None


def check_image(path: str | Path, decode: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Checks that an image is readable (see the module docstring for how deep) -> (width, height).

    Raises ImageError saying why not.
    """
    if decode:
        grey = load_image(path, max_pixels)
        return grey.shape[1], grey.shape[0]
    what = _describe(path)
    image = _open_image(path, max_pixels)
    size = image.size
    try:
        if image.format == "PNG":
            image.verify()  # reads every chunk and checks CRCs: catches truncation without inflating
        elif image.format == "JPEG":
            image.draft("L", (max(1, size[0] // 8), max(1, size[1] // 8)))
            image.load()  # reads the whole entropy-coded stream, at 1/8 scale
        else:
            image.load()
    except Exception as err:
        raise _fail(what, f"cannot decode (truncated or corrupt file): {err}") from None
    # The EXIF orientation may swap the sides: report the size the model will see.
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    if orientation in (5, 6, 7, 8):
        size = (size[1], size[0])
    return size


# ----------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Record:
    """One good line of labels.jsonl."""

    image_key: str  # the `image` value as written in labels.jsonl
    image_path: Path
    sheet: Sheet
    primitives: list[Primitive]
    extra: dict  # every other key of the line (e.g. "style"), kept as read
    line_number: int  # 1-based
    image_size: tuple[int, int] | None = None  # (width, height) in pixels, when images were checked


@dataclasses.dataclass
class LineProblem:
    """Why one line of labels.jsonl was not used."""

    line_number: int
    message: str
    file_name: str = LABELS_FILE

    def __str__(self) -> str:
        return f"{self.file_name}:{self.line_number}: {self.message}"


def labels_path(folder: str | Path) -> Path:
    """`folder/labels.jsonl`, or UserError saying what was expected."""
    folder = Path(folder)
    layout = f"a dataset folder holds {LABELS_FILE} (one JSON object a line) and the images it names"
    if not folder.exists():
        raise UserError(f"dataset folder {folder} does not exist ({layout})")
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder ({layout})")
    path = folder / LABELS_FILE
    if not path.is_file():
        raise UserError(f"{path} not found ({layout})")
    return path


def _read_lines(path: Path) -> list[tuple[int, str | None]]:
    """(line number, text or None when it is not UTF-8) for every line of the file."""
    out = []
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM, as some Windows editors write
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            out.append((number, raw.decode("utf-8").rstrip("\r")))
        except UnicodeDecodeError:
            out.append((number, None))
    if out and out[-1][1] == "":  # the empty piece after the final newline
        out.pop()
    return out


def _label_object(text: str) -> dict:
    """One line's JSON object; ProgramError says why it is not one."""
    obj = loads_json(text, one_line=True)
    if not isinstance(obj, dict):
        raise ProgramError(f"expected a JSON object {{\"image\": ..., \"sheet\": ..., \"primitives\": ...}}, "
                           f"got a JSON {type(obj).__name__}")
    return obj


def image_key_problem(image_key: Any) -> str | None:
    """Why a label's `image` cannot name a file of its dataset folder, or None.

    The rule (docs/reliability.md): a relative path that stays inside the folder. No absolute path, no
    way up with '..' (a/../b.png is fine), no NUL byte. It is checked on the text, so a link inside the
    folder to elsewhere (images/ on another disk) is the folder owner's choice and still works.
    """
    if not isinstance(image_key, str) or not image_key.strip():
        return f"'image' must be a path relative to the folder, got {image_key!r}"
    if "\x00" in image_key:
        return f"'image' holds a NUL character: {image_key!r}"
    if posixpath.isabs(image_key) or image_key.startswith("\\") or re.match(r"^[A-Za-z]:", image_key):
        return (f"image {image_key!r} is an absolute path; labels may name only files inside their dataset "
                f"folder, by a path relative to it")
    if posixpath.normpath(image_key).split("/")[0] == "..":
        return (f"image {image_key!r} lies outside the dataset folder; labels may name only files inside it "
                f"(a relative path that does not climb out with '..')")
    return None


def parse_label_line(text: str, folder: Path, require_primitives: bool = True
                     ) -> tuple[str, Path, Sheet, list[Primitive], dict]:
    """One line's JSON -> (image key, image path, sheet, primitives, extra); ProgramError says why not."""
    obj = _label_object(text)
    required = REQUIRED_KEYS if require_primitives else ("image", "sheet")
    missing = [key for key in required if key not in obj]
    if missing:
        raise ProgramError(f"missing key {', '.join(repr(k) for k in missing)}")
    image_key = obj["image"]
    problem = image_key_problem(image_key)
    if problem:
        raise ProgramError(problem)
    try:
        sheet = Sheet.from_json(obj["sheet"])
    except ProgramError as err:
        raise ProgramError(f"bad sheet: {err}") from None
    primitives = primitives_from_json(obj.get("primitives", []))
    problems = program_problems(primitives, sheet)
    if problems:
        raise ProgramError("; ".join(problems))
    extra = {k: v for k, v in obj.items() if k not in REQUIRED_KEYS}
    return image_key, folder / image_key, sheet, primitives, extra


@dataclasses.dataclass
class ReadingEntry:
    """One drawing of a dataset folder to read (`labels_for_reading`): its label need not be a good one."""

    image_key: str
    image_path: Path
    sheet: Sheet | None  # None when the label's sheet is unusable: inferred from the image
    line_number: int
    label_problem: str | None = None  # why the label would not be accepted by `check`, if it would not


def _label_texts(lines: Iterable[tuple[int, str | None]], problems: list[LineProblem]):
    """(line number, text) of every non-blank line; a line that is not UTF-8 becomes a problem."""
    for number, text in lines:
        if text is None:
            problems.append(LineProblem(number, "not UTF-8 text"))
        elif text.strip():
            yield number, text


def labels_for_reading(folder: str | Path) -> tuple[list[ReadingEntry], list[LineProblem]]:
    """What `predict` reads in a dataset folder: every line that names an image it may open.

    Reading an image never depends on its label: a line whose sheet or primitives break the contract
    is still read (with its sheet when that one is good), its problem carried beside it. Only a line
    that names no usable image (bad JSON, no 'image', a path outside the folder, a repeat) is a problem.
    """
    folder = Path(folder)
    entries: list[ReadingEntry] = []
    problems: list[LineProblem] = []
    first_line_of: dict[str, int] = {}
    for number, text in _label_texts(_read_lines(labels_path(folder)), problems):
        try:
            obj = _label_object(text)
            if "image" not in obj:
                raise ProgramError("missing key 'image'")
            problem = image_key_problem(obj["image"])
            if problem:
                raise ProgramError(problem)
        except ProgramError as err:
            problems.append(LineProblem(number, str(err)))
            continue
        image_key = obj["image"]
        if image_key in first_line_of:
            problems.append(LineProblem(number, f"image {image_key!r} is already labelled on line "
                                                f"{first_line_of[image_key]}"))
            continue
        first_line_of[image_key] = number
        try:
            _, _, sheet, _, _ = parse_label_line(text, folder, require_primitives=False)
            label_problem = None
        except ProgramError as err:
            label_problem = str(err)
            try:
                sheet = Sheet.from_json(obj.get("sheet"))
            except (ProgramError, TypeError, ValueError):
                sheet = None
        entries.append(ReadingEntry(image_key, folder / image_key, sheet, number, label_problem))
    return entries, problems


def load_labels(folder: str | Path, check_images: bool = True, require_primitives: bool = True,
                decode_images: bool = False, progress: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[list[Record], list[LineProblem]]:
    """Reads `folder/labels.jsonl` -> (records of the good lines, one problem for each bad line).

    Blank lines are ignored. A missing folder or labels file raises UserError.
    `check_images`: each image must exist and pass `check_image` (cheap; `decode_images` for a full
    decode). `require_primitives=False` accepts lines without `primitives` (a folder to predict on).
    """
    folder = Path(folder)
    path = labels_path(folder)
    lines = _read_lines(path)
    records: list[Record] = []
    problems: list[LineProblem] = []
    first_line_of: dict[str, int] = {}
    iterator: Iterable = lines
    if progress:
        from tqdm import tqdm
        iterator = tqdm(lines, desc=f"checking {path}", unit="line", disable=None, leave=False)
    for number, text in _label_texts(iterator, problems):
        try:
            image_key, image_path, sheet, primitives, extra = parse_label_line(text, folder, require_primitives)
        except ProgramError as err:
            problems.append(LineProblem(number, str(err)))
            continue
        if image_key in first_line_of:
            problems.append(LineProblem(number, f"image {image_key!r} is already labelled on line "
                                                f"{first_line_of[image_key]}"))
            continue
        first_line_of[image_key] = number
        image_size = None
        if check_images:
            try:
                image_size = check_image(image_path, decode=decode_images, max_pixels=max_pixels)
            except ImageError as err:
                where = f" (looked for {image_path})" if err.reason == "file not found" else ""
                problems.append(LineProblem(number, f"image {image_key!r}: {err.reason}{where}"))
                continue
        records.append(Record(image_key, image_path, sheet, primitives, extra, number, image_size))
    return records, problems


def load_dataset(folder: str | Path, logger: Callable[[str], Any] = print, check_images: bool = True,
                 require_primitives: bool = True, progress: bool = False) -> list[Record]:
    """`load_labels`, logging every skipped line with its reason; UserError when no line is usable.

    This is the loader training and evaluation use, so a bad line is never lost silently.
    """
    records, problems = load_labels(folder, check_images=check_images,
                                    require_primitives=require_primitives, progress=progress)
    if problems:
        logger(f"{folder}: skipped {len(problems)} line{'s' if len(problems) != 1 else ''} "
               f"(run 'cad2program check {folder}' for a full report):")
        for problem in problems:
            logger(f"  {problem}")
    if not records:
        raise UserError(f"{labels_path(folder)}: no usable drawing"
                        + (f" ({len(problems)} bad lines)" if problems else " (the file is empty)"))
    return records


# ----------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------


def record_to_json(image_key: str, sheet: Sheet, primitives: Iterable[Primitive], **extra: Any) -> dict:
    """One labels.jsonl object in the contract's form (extra keys such as style go last)."""
    return {"image": image_key, "sheet": sheet.to_json(),
            "primitives": [p.to_json() for p in primitives], **extra}


def write_labels(path: str | Path, records_as_dicts: Iterable[dict]) -> int:
    """Writes one JSON object a line (a labels.jsonl or a prediction file) -> the number written.

    Written safely (`outfile.OutputFile`): a temporary file renamed at the end, so a crash never
    leaves half a file; a device or pipe is written in place.
    """
    from cad2program.outfile import OutputFile

    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with OutputFile(path, what="output") as out:
        for obj in records_as_dicts:
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            count += 1
    return count
