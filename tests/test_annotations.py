"""The numbers an OCR engine reads on a drawing (annotations.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cad2program.annotations import available, numbers_in, written_numbers
from cad2program.program import Circle, primitive_from_json

CLEAN = Path(__file__).parent.parent / "testsets" / "clean"


def test_a_dimension_text_gives_its_value_with_the_prefix_dropped():
    assert numbers_in("R16") == {16.0, 6.0}  # a leading digit may be a misread sign: both count
    assert numbers_in("39.5") == {39.5, 9.5}
    assert numbers_in("027") == {27.0}  # 'Ø27' read with a zero for the sign
    assert numbers_in("Ø12,5") == {12.5, 2.5}
    assert numbers_in("8") == {8.0}
    assert numbers_in("O") == set() and numbers_in("0") == set()  # no size is zero


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
def test_most_sizes_written_on_a_clean_test_drawing_are_read():
    found = total = 0
    for line in (CLEAN / "labels.jsonl").read_text().splitlines()[:3]:
        label = json.loads(line)
        numbers = {n.value for n in written_numbers(np.array(Image.open(CLEAN / label["image"])))}
        for primitive in map(primitive_from_json, label["primitives"]):
            for field in type(primitive).SIZE_FIELDS:  # a circle is dimensioned by its diameter
                value = getattr(primitive, field) * (2 if isinstance(primitive, Circle) else 1)
                total, found = total + 1, found + (round(value, 1) in numbers)
    assert total >= 5 and found / total >= 0.7


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
def test_blank_paper_has_no_numbers():
    assert written_numbers(np.full((200, 300), 255, np.uint8)) == ()


@pytest.mark.skipif(not available(), reason="rapidocr_onnxruntime is not installed")
def test_text_written_upwards_is_read_and_placed_where_it_is_drawn():
    # testsets/clean/images/000019.png: '21.5' runs up the right of the rectangle, its centre near
    # column 281, row 398; '38' is level above it, centred near column 169, row 311.
    numbers = written_numbers(np.array(Image.open(CLEAN / "images" / "000019.png")))
    [upwards] = [n for n in numbers if n.value == 21.5]
    [level] = [n for n in numbers if n.value == 38.0]
    assert abs(upwards.col - 281) < 6 and abs(upwards.row - 398) < 6
    assert abs(level.col - 169) < 6 and abs(level.row - 311) < 6
