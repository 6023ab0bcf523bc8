"""The numbers an OCR engine reads on a drawing (annotations.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cv2

from cad2program.reading.ocr import (TEXT_FINDERS, available, ink_text_boxes, numbers_in, values_in, views,
                                     written_numbers)
from cad2program.contract.program import Circle, primitive_from_json

CLEAN = Path(__file__).parent.parent / "testsets" / "clean"


def test_a_dimension_text_gives_its_value_with_the_prefix_dropped():
    assert numbers_in("16") == {16.0, 6.0}  # a leading digit may be a misread sign: both count
    assert numbers_in("39.5") == {39.5, 9.5}
    assert numbers_in("027") == {27.0}  # 'Ø27' read with a zero for the sign
    assert numbers_in("Ø12,5") == {12.5, 2.5}
    assert numbers_in("8") == {8.0}
    assert numbers_in("O") == set() and numbers_in("0") == set()  # no size is zero


def test_a_number_after_an_r_is_a_radius_and_keeps_all_its_digits():
    assert values_in("R16") == {(16.0, True)}  # no sign to misread: 6 is not among them
    assert values_in("r 7.5") == {(7.5, True)}
    assert values_in("Ø27") == {(27.0, False), (7.0, False)} and values_in("927") == {(927.0, False), (27.0, False)}


def test_the_detector_reads_the_page_and_the_page_turned_a_quarter_clockwise():
    image = np.full((4, 6), 255, np.uint8)
    image[3, 0] = 0  # bottom left: where text written upwards begins
    page, turned = views(image)
    assert page.shape == (4, 6, 3) and turned.shape == (6, 4, 3) and turned.flags["C_CONTIGUOUS"]
    assert (page[..., 0] == image).all() and turned[0, 0, 0] == 0  # upwards text now starts top left, level


def _page_with_text() -> np.ndarray:
    """A 400 x 500 page: a long line, a circle, 'R12' level at (60, 100) and '34' written upwards."""
    page = np.full((400, 500), 255, np.uint8)
    cv2.line(page, (20, 380), (480, 380), 0, 2)  # strokes: far longer than a glyph
    cv2.circle(page, (380, 150), 60, 0, 2)
    cv2.putText(page, "R12", (60, 100), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 2)  # level, about 15 px tall
    upwards = np.full((30, 60), 255, np.uint8)
    cv2.putText(upwards, "34", (10, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, 0, 2)
    page[200:260, 100:130] = np.rot90(upwards)  # written upwards, as along a vertical dimension line
    return page


def test_the_ink_finds_text_apart_from_the_strokes_and_says_which_way_it_runs():
    boxes = sorted(ink_text_boxes(_page_with_text()))
    assert len(boxes) == 2, boxes
    (col, row, width, height), (col2, row2, width2, height2) = boxes
    assert 55 <= col <= 62 and 80 <= row <= 90 and width > 1.3 * height  # "R12": level
    assert 100 <= col2 <= 115 and 215 <= row2 <= 235 and height2 > 1.3 * width2  # "34": vertical
    assert ink_text_boxes(np.full((100, 100), 255, np.uint8)) == []


def test_dashed_lines_are_not_text_even_where_their_dashes_outnumber_the_glyphs():
    page = _page_with_text()
    for start in range(20, 480, 18):  # dashes of glyph length: hidden lines, level and upright
        cv2.line(page, (start, 330), (start + 11, 330), 0, 2)
    for start in range(40, 190, 18):
        cv2.line(page, (470, start), (470, start + 11), 0, 2)
    boxes = sorted(ink_text_boxes(page))
    assert len(boxes) == 2, boxes  # 'R12' and '34' only
    assert all(row < 300 for _, row, _, _ in boxes)


def test_a_large_page_is_searched_smaller_and_its_boxes_given_in_its_own_pixels():
    page = _page_with_text()
    large = cv2.resize(page, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)  # 1500 px: above FIND_SIDE
    small_boxes, large_boxes = sorted(ink_text_boxes(page)), sorted(ink_text_boxes(large))
    assert len(large_boxes) == len(small_boxes) == 2
    for small, big in zip(small_boxes, large_boxes):
        assert np.allclose(np.array(big), 3 * np.array(small), atol=8), (small, big)


def test_an_unknown_text_finder_is_refused():
    with pytest.raises(ValueError, match="ink, detector"):
        written_numbers(np.full((10, 10), 255, np.uint8), "tesseract")


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
@pytest.mark.parametrize("finder", TEXT_FINDERS)
def test_most_sizes_written_on_a_clean_test_drawing_are_read(finder):
    found = total = 0
    for line in (CLEAN / "labels.jsonl").read_text().splitlines()[:3]:
        label = json.loads(line)
        numbers = {n.value for n in written_numbers(np.array(Image.open(CLEAN / label["image"])), finder)}
        for primitive in map(primitive_from_json, label["primitives"]):
            for field in type(primitive).SIZE_FIELDS:  # a circle is dimensioned by its diameter
                value = getattr(primitive, field) * (2 if isinstance(primitive, Circle) else 1)
                total, found = total + 1, found + (round(value, 1) in numbers)
    assert total >= 5 and found / total >= 0.7


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
def test_the_recogniser_pads_texts_to_the_configured_width_and_a_new_width_builds_a_new_engine():
    from cad2program.reading import ocr

    assert ocr._engine().text_rec.rec_image_shape == [3, 48, ocr.RECOGNITION_MIN_WIDTH]
    before = ocr.RECOGNITION_MIN_WIDTH
    try:
        ocr.configure(recognition_min_width=320)
        assert ocr._engine().text_rec.rec_image_shape == [3, 48, 320]
    finally:
        ocr.configure(recognition_min_width=before)
    assert ocr._engine().text_rec.rec_image_shape == [3, 48, before]


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
@pytest.mark.parametrize("finder", TEXT_FINDERS)
def test_blank_paper_has_no_numbers(finder):
    assert written_numbers(np.full((200, 300), 255, np.uint8), finder) == ()


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
@pytest.mark.parametrize("finder", TEXT_FINDERS)
def test_text_written_upwards_is_read_and_placed_where_it_is_drawn(finder):
    # testsets/clean/images/000019.png: '21.5' runs up the right of the rectangle, its centre near
    # column 281, row 398; '38' is level above it, centred near column 169, row 311.
    numbers = written_numbers(np.array(Image.open(CLEAN / "images" / "000019.png")), finder)
    [upwards] = [n for n in numbers if n.value == 21.5]
    [level] = [n for n in numbers if n.value == 38.0]
    assert abs(upwards.col - 281) < 6 and abs(upwards.row - 398) < 6
    assert abs(level.col - 169) < 6 and abs(level.row - 311) < 6


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
def test_the_real_sheet_is_found_from_the_written_sizes_when_it_was_only_inferred():
    import dataclasses

    from cad2program.contract.program import Arc, Rectangle, Sheet
    from cad2program.reading import Recognition, infer_sheet
    from cad2program.reading.sizes import sheet_from_numbers

    # testsets/clean/images/000019.png: a 103 x 103 mm sheet; without it, 297 x 297 is assumed.
    label = json.loads((CLEAN / "labels.jsonl").read_text().splitlines()[19])
    image = np.array(Image.open(CLEAN / label["image"]))
    assumed = infer_sheet(image)
    factor = assumed.width / label["sheet"]["width"]
    scaled = []  # the sized primitives as a model reading on the assumed sheet writes them
    for primitive in map(primitive_from_json, label["primitives"]):
        if isinstance(primitive, Rectangle):
            scaled.append(Rectangle(*(round(v * factor, 1) for v in (primitive.x, primitive.y, primitive.width, primitive.height))))
        elif isinstance(primitive, (Arc, Circle)):
            scaled.append(dataclasses.replace(primitive, x=round(primitive.x * factor, 1), y=round(primitive.y * factor, 1),
                                              radius=round(primitive.radius * factor, 1)))
    seen = Recognition(assumed, scaled, [0.9] * len(scaled), valid=True)
    assert len(scaled) >= 3 and assumed == Sheet(297, 297)
    assert sheet_from_numbers(image, seen, written_numbers(image)) == Sheet(103, 103)
    assert sheet_from_numbers(image, seen, ()) is None  # nothing written: nothing to go on
    assert sheet_from_numbers(image, dataclasses.replace(seen, primitives=scaled[:1], confidences=[0.9]),
                              written_numbers(image)) is None  # one size alone could match any number near it
