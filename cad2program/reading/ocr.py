"""The numbers written on a drawing, read by OCR at the image's own resolution.

The model reads a size's digits at its input size (256 px in the `cpu` config), where a dimension's
glyphs are a few pixels tall: it gets the magnitude right far more often than the last digit. An OCR
engine reading the full-resolution image sees the glyphs clearly. `written_numbers` returns every
number it finds (a dimension's value, its prefix R or Ø dropped) and where its text is;
`Recognizer.reread_sizes` favours a size whose value is written near the primitive. A number counts
only for sizes the ink's measurement already allows.

Where the text is, two ways (`TEXT_FINDERS`):
- "ink" (the default): glyph-sized blobs of ink, grouped into texts (`ink_text_boxes`). A drawing's
  text is short numbers on white paper, mostly apart from the strokes, so grouping the ink finds
  most of it in a few milliseconds; a text box taller than wide is vertical text, read turned both
  ways, and a square one is read all three ways. Text that touches a stroke is part of a component
  too large to be a glyph, and is missed.
- "detector": the engine's text detector (a neural network) on the page. Dimensions along vertical
  lines are written turned a quarter (upwards, or downwards by some drafting rules); the detector,
  trained on level text, finds such text one character at a time, so the page is read twice: as it
  is, and turned a quarter clockwise (where upward text is level and downward text is level upside
  down, read both ways round). It finds text touching strokes too, at about ten times the cost.
Either way the engine's recogniser reads the boxes.

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

from cad2program.refine import grey, ink_mask

# Detection runs on the image scaled so its shorter side is this many pixels (RapidOCR's default):
# dimension text in a 512 px drawing is 8-10 px tall, too small for the detector unscaled
# (`scripts/ocr_recall.py 20 testsets/clean`: 0.95 of the sizes read at 736, 0.75 at 512).
DETECTION_SIDE = 736
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
# The recogniser reads each text resized to 48 px tall, as wide as its shape makes it; a batch is
# padded to its widest text and to at least this many pixels. RapidOCR's default, 320, pads a 3-digit
# number (about 90 px) to 320: most of the work was on padding. The narrowest width that reads as many
# sizes as 320 on the battery's five part and sketch dev halves (250 drawings, `scripts/ocr_recall.py
# 50 testsets/battery/{ezdxf,hand,parts-ezdxf,parts-librecad,photo}/dev --finders ink
# --recognition-min-widths 320 48 64 96 128`, 2026-12-07): of 1,196 sizes 704 at 320, 693 at 48, 692
# at 64, 706 at 96, 710 at 128; 96 reads in about 0.45 of 320's time.
RECOGNITION_MIN_WIDTH = 96
TEXT_SCORE = 0.5  # recognitions the engine is less sure of are dropped
LEVEL_SHARE = 0.7  # text boxes narrower than this for their height are vertical text, read in the turned view
TEXT_FINDERS = ("ink", "detector")

# The ink finder. JOIN_HEIGHTS, MIN_TEXT_HEIGHTS and CROP_MARGIN were chosen among a few on 150 held-out
# generated drawings (`scripts/ocr_recall.py`), not on the test sets.
GLYPH_SIDES = (0.007, 0.05)  # a glyph's longer side, as a share of the image's longer side
JOIN_HEIGHTS = 0.5  # glyphs nearer than this many glyph heights are one text
MIN_TEXT_HEIGHTS = 0.6  # smaller groups are specks, not text
MIN_TEXT_THICKNESS = 0.4  # groups thinner than this many glyph heights across are dashes of a line, not text
SOLID = 0.3  # glyphs this wide for their length (all digits but 1) give the text's height; dashes do not
CROP_MARGIN = 0.2  # a text's crop reaches this share of its shorter side (and 2 px) around it
SQUARE = 1.3  # a box within this ratio of square may be level or vertical text: read all three ways
FIND_SIDE = 1024  # larger pages are searched for text at this longer side (a photo's glyphs stay 10+ px tall)


def configure(detection_side: int | None = None, recognition_min_width: int | None = None) -> None:
    """Sets DETECTION_SIDE and RECOGNITION_MIN_WIDTH (None: as they are) for the engine's next use
    (`scripts/ocr_recall.py` compares values side by side)."""
    global DETECTION_SIDE, RECOGNITION_MIN_WIDTH
    DETECTION_SIDE = DETECTION_SIDE if detection_side is None else detection_side
    RECOGNITION_MIN_WIDTH = RECOGNITION_MIN_WIDTH if recognition_min_width is None else recognition_min_width


def _engine():
    """The engine for the settings of the moment, loaded on first use; None without the package."""
    return _engine_with(DETECTION_SIDE, RECOGNITION_MIN_WIDTH)


@functools.lru_cache(maxsize=4)
def _engine_with(detection_side: int, recognition_min_width: int):
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    import logging
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return RapidOCR(det_limit_side_len=detection_side, det_limit_type="min", print_verbose=False,
                    rec_img_shape=[3, 48, recognition_min_width])


_lock = threading.Lock()  # one engine, shared by a server's threads: onnxruntime sessions are, the wrapper is not


def available() -> bool:
    return _engine() is not None


def numbers_in(text: str) -> set[float]:
    """Every value a recognised text may spell, rounded to 0.1 mm (`values_in`, without what they are)."""
    return {value for value, _ in values_in(text)}


def values_in(text: str) -> set[tuple[float, bool]]:
    """Every (value, is a radius) a recognised text may spell, values rounded to 0.1 mm.

    A number written after an R is a radius (the contract: `R` before a radius, `Ø` before a
    diameter). A diameter sign is often read as a digit ('Ø27' as '027' or '927'), so each other
    number of two digits or more also counts without its first digit."""
    found = set()
    for match in NUMBER.finditer(text):
        digits = match.group().replace(",", ".")
        radius = text[:match.start()].rstrip().upper().endswith("R")
        found.add((round(float(digits), 1), radius))
        if not radius and len(digits.split(".")[0]) >= 2:
            found.add((round(float(digits[1:]), 1), False))
    return {(v, radius) for v, radius in found if v > 0}


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
    radius: bool = False  # written after an R


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


def ink_text_boxes(page: np.ndarray, ink: np.ndarray | None = None) -> list[tuple[int, int, int, int]]:
    """Where a grey page's text is, found from its ink (`ink`: the page's `ink_mask`, when the caller
    has it): (column, row, width, height) of each group of glyph-sized ink components (GLYPH_SIDES)
    lying within JOIN_HEIGHTS of each other."""
    if max(page.shape) > FIND_SIDE:  # the boxes found on a smaller copy, in the page's pixels
        scale = max(page.shape) / FIND_SIDE
        small = cv2.resize(page, (round(page.shape[1] / scale), round(page.shape[0] / scale)),
                           interpolation=cv2.INTER_AREA)
        return [(int(col * scale), int(row * scale), int(np.ceil(width * scale)), int(np.ceil(height * scale)))
                for col, row, width, height in ink_text_boxes(small)]
    ink = (ink_mask(page) if ink is None else ink).astype(np.uint8)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    sides = stats[:, [cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]]
    longer, shorter = sides.max(axis=1), sides.min(axis=1)
    side = max(page.shape)
    glyph = (longer >= GLYPH_SIDES[0] * side) & (longer <= GLYPH_SIDES[1] * side) & (stats[:, cv2.CC_STAT_AREA] >= 4)
    glyph[0] = False  # the paper
    if not glyph.any():
        return []
    solid = glyph & (shorter >= SOLID * longer)
    height = float(np.median(longer[solid if solid.any() else glyph]))  # of the text: digits are most of the glyphs
    reach = max(1, round(JOIN_HEIGHTS * height))
    joined = cv2.dilate(glyph[labels].astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    _, _, groups, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    boxes = []
    for col, row, width, tall in groups[1:, :4] + [reach, reach, -2 * reach, -2 * reach]:  # the dilation undone
        if max(width, tall) >= MIN_TEXT_HEIGHTS * height and min(width, tall) >= MIN_TEXT_THICKNESS * height:
            boxes.append((int(col), int(row), int(width), int(tall)))
    return boxes


def _ink_crops(page: np.ndarray, ink: np.ndarray | None = None) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Each `ink_text_boxes` text cut out of the grey page (as the engine's 3 channels), turned each
    way it may be written (SQUARE), and the centre it was found at."""
    bgr = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    crops, centres = [], []
    for col, row, width, height in ink_text_boxes(page, ink):
        margin = round(CROP_MARGIN * min(width, height) + 2)
        crop = bgr[max(0, row - margin):row + height + margin, max(0, col - margin):col + width + margin]
        if width >= SQUARE * height:
            turns = (0,)  # level
        elif height >= SQUARE * width:
            turns = (1, 3)  # written upwards or downwards
        else:
            turns = (0, 1, 3)
        crops += [np.ascontiguousarray(np.rot90(crop, k)) for k in turns]
        centres += [(col + width / 2, row + height / 2)] * len(turns)
    return crops, centres


def _detector_crops(image: np.ndarray) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """The text the engine's detector finds on the page and on the page turned a quarter, each cut out
    level (text written downwards both ways round), and its centre on the page."""
    page, turned = views(image)
    height = page.shape[0]
    crops, centres = [], []
    for view, ways in ((page, (0,)), (turned, (0, 2))):  # text written downwards is level upside down
        for box in text_boxes(view):
            crop = _crop(view, box)
            if crop.shape[1] >= LEVEL_SHARE * crop.shape[0]:  # the other view has it level
                col, row = np.asarray(box, float).mean(axis=0)
                centre = (col, row) if view is page else (row, height - 1 - col)  # turned back
                crops += [np.ascontiguousarray(np.rot90(crop, k)) for k in ways]
                centres += [centre] * len(ways)
    return crops, centres


def text_crops(image: np.ndarray, finder: str = "ink", ink: np.ndarray | None = None
               ) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Where the text is on a drawing, found by `finder` (one of TEXT_FINDERS; `ink`: the image's
    `ink_mask`, which the ink finder uses when given): each text cut out, level, for the recogniser, and
    the centre of its text on the image (pixels: column, row). The detector's caller holds `_lock`
    where threads share the engine."""
    if finder not in TEXT_FINDERS:
        raise ValueError(f"unknown text finder {finder!r}: one of {', '.join(TEXT_FINDERS)}")
    return _ink_crops(grey(image), ink) if finder == "ink" else _detector_crops(image)


def written_numbers(image: np.ndarray, finder: str = "ink", ink: np.ndarray | None = None
                    ) -> tuple[WrittenNumber, ...] | None:
    """The numbers written on a drawing (any uint8 image array), its text found by `finder` (one of
    TEXT_FINDERS; `ink`: the image's `ink_mask` at its own size, when the caller has it); None when no
    OCR engine is installed."""
    engine = _engine()
    if engine is None:
        text_crops(image, finder)  # an unknown finder is refused all the same
        return None
    with _lock:
        crops, centres = text_crops(image, finder, ink)
        texts, _ = engine.text_rec(crops) if crops else ([], 0.0)
    return tuple(WrittenNumber(v, float(col), float(row), radius)
                 for (text, score, *_), (col, row) in zip(texts, centres)
                 if score >= TEXT_SCORE for v, radius in sorted(values_in(text)))
