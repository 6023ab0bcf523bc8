"""The numbers written on a drawing, read by OCR at the image's own resolution.

The model reads a size's digits at its input size (256 px in the `cpu` config), where a dimension's
glyphs are a few pixels tall: it gets the magnitude right far more often than the last digit. An OCR
engine reading the full-resolution image sees the glyphs clearly. `written_numbers` returns every
number it finds (a dimension's value, its prefix R or Ø dropped) and where its text is;
`Recognizer.reread_sizes` favours a size whose value is written near the primitive. A number counts
only for sizes the ink's measurement already allows.

Dimensions along vertical lines are written turned a quarter (upwards, or downwards by some drafting
rules). The detector, trained on level text, finds such text one character at a time, so the page is
read twice: as it is, and turned a quarter clockwise (where upward text is level and downward text is
level upside down, read both ways round).

The engine is RapidOCR 1.4 (PP-OCRv4 text detection and recognition, as ONNX models run by
onnxruntime). Its wheel ships the models, so reading works offline; it is loaded once, on first use.
Without the package, `written_numbers` returns None and sizes are read as before. Knows nothing of
the model.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import NamedTuple

import cv2
import numpy as np

from cad2program.refine import grey

# Detection runs on the image scaled so its shorter side is this many pixels (RapidOCR's default):
# dimension text in a 512 px drawing is 8-10 px tall, too small for the detector unscaled
# (`scripts/ocr_recall.py 20 testsets/clean`: 0.95 of the sizes read at 736, 0.75 at 512).
DETECTION_SIDE = 736
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
TEXT_SCORE = 0.5  # recognitions the engine is less sure of are dropped
LEVEL_SHARE = 0.7  # text boxes narrower than this for their height are vertical text, read in the turned view


@functools.lru_cache(maxsize=1)
def _engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    import logging
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return RapidOCR(det_limit_side_len=DETECTION_SIDE, det_limit_type="min", print_verbose=False)


_lock = threading.Lock()  # one engine, shared by a server's threads: onnxruntime sessions are, the wrapper is not


def available() -> bool:
    return _engine() is not None


def numbers_in(text: str) -> set[float]:
    """Every value a recognised text may spell, rounded to 0.1 mm.

    A diameter sign is often read as a digit ('Ø27' as '027' or '927'), so each number of two digits
    or more also counts without its first digit."""
    found = set()
    for match in NUMBER.finditer(text):
        digits = match.group().replace(",", ".")
        found.add(round(float(digits), 1))
        if len(digits.split(".")[0]) >= 2:
            found.add(round(float(digits[1:]), 1))
    return {v for v in found if v > 0}


def _crop(page: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The text box (4 corners, clockwise from top left) cut out and straightened."""
    box = box.astype(np.float32)
    width = int(max(np.linalg.norm(box[0] - box[1]), np.linalg.norm(box[2] - box[3])))
    height = int(max(np.linalg.norm(box[0] - box[3]), np.linalg.norm(box[1] - box[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(box, target)
    return cv2.warpPerspective(page, matrix, (max(width, 1), max(height, 1)), flags=cv2.INTER_CUBIC,
                               borderMode=cv2.BORDER_REPLICATE)


class WrittenNumber(NamedTuple):
    """A number read on the image, and the centre of its text there (pixels: column, row)."""

    value: float
    col: float
    row: float


def views(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two images the text detector reads: the page (grey, as the engine's 3 channels), and the
    page turned a quarter clockwise, where text written upwards is level."""
    page = cv2.cvtColor(grey(image), cv2.COLOR_GRAY2BGR)
    return page, np.ascontiguousarray(np.rot90(page, -1))


def text_boxes(view: np.ndarray) -> list[np.ndarray]:
    """The boxes (4 corners each, clockwise from top left) where the OCR engine's detector finds text
    on one of the `views`; none without the engine. The caller holds `_lock` where threads share it."""
    engine = _engine()
    if engine is None:
        return []
    boxes, _ = engine.text_det(view)
    return list(boxes) if boxes is not None else []


def written_numbers(image: np.ndarray) -> tuple[WrittenNumber, ...] | None:
    """The numbers written on a drawing (any uint8 image array); None when no OCR engine is installed."""
    engine = _engine()
    if engine is None:
        return None
    page, turned = views(image)
    height = page.shape[0]
    crops, centres = [], []
    with _lock:
        for view, ways in ((page, (0,)), (turned, (0, 2))):  # text written downwards is level upside down
            for box in text_boxes(view):
                crop = _crop(view, box)
                if crop.shape[1] >= LEVEL_SHARE * crop.shape[0]:  # the other view has it level
                    col, row = np.asarray(box, float).mean(axis=0)
                    centre = (col, row) if view is page else (row, height - 1 - col)  # turned back
                    crops += [np.ascontiguousarray(np.rot90(crop, k)) for k in ways]
                    centres += [centre] * len(ways)
        texts, _ = engine.text_rec(crops) if crops else ([], 0.0)
    return tuple(WrittenNumber(v, float(col), float(row)) for (text, score, *_), (col, row) in zip(texts, centres)
                 if score >= TEXT_SCORE for v in sorted(numbers_in(text)))
