"""Erasing what was found from an image: what is left is what the found primitives do not explain
(the annotations, and anything the model missed), which the second look reads again."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from cad2program.contract.program import Primitive, Sheet
from cad2program.refine.ink import Frame, grey, paper_around, strokes_mask

ERASE_SHARE = 0.012  # strokes are erased this share of the image's longer side wide (a pen's width and wobble)


def erase_primitives(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive],
                     paper: np.ndarray | None = None) -> np.ndarray:
    """(H, W) grey uint8: the image with the primitives' strokes painted over with the paper around
    them (`paper`: the image's `paper_around`, when the caller has it), so that what is left is what
    they do not explain (the annotations, and anything missed)."""
    image = grey(image)
    paper = paper_around(image) if paper is None else paper
    frame = Frame(sheet, image.shape[1], image.shape[0])
    width = max(3, round(max(image.shape) * ERASE_SHARE))
    strokes = strokes_mask(image.shape, frame, primitives, width, cv2.LINE_AA)
    return np.where(strokes, paper, image)
