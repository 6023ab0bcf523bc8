"""The input pipeline: drawings (generated on the fly or read from a dataset folder) -> model batches.

Built on Grain: a `MapDataset` of example *indices*, so the position in the stream is one integer
that a checkpoint stores and a resumed run slices from, and decoding/rendering runs in worker
processes while the accelerator (or the other core) trains.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from cad2program.contract import tokenizer
from cad2program.contract.program import TYPE_NAMES, Arc, Primitive, Rectangle, Sheet


def prepare_image(image: np.ndarray, size: int) -> np.ndarray:
    """Any drawing image -> (size, size, 1) float32 in [0, 1] with ink = 1.

    The longer side is resized to `size` and the rest padded with blank paper at the right/bottom, so
    the sheet's aspect ratio is kept (stretching would distort circles into ellipses).
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY if image.shape[2] == 3 else cv2.COLOR_RGBA2GRAY)
    h, w = image.shape
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) != (w, h):
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    out = np.zeros((size, size, 1), np.float32)
    out[:new_h, :new_w, 0] = 1.0 - image.astype(np.float32) / 255.0
    return out


def encode_target(sheet: Sheet, primitives: Sequence[Primitive], max_tokens: int) -> np.ndarray | None:
    """Prompt + program + <eos>, padded to max_tokens; None when the program does not fit."""
    tokens = tokenizer.encode(sheet, primitives)
    if len(tokens) > max_tokens:
        return None
    out = np.full(max_tokens, tokenizer.PAD, np.int32)
    out[:len(tokens)] = tokens
    return out


def keypoint_map(sheet: Sheet, primitives: Sequence[Primitive], grid: int) -> np.ndarray:
    """(grid, grid) int32: per image patch, 1 + the type index of a primitive with a key point in it, else 0.

    Key points are the positions a program writes: line ends, rectangle corners, circle and arc
    centres (and an arc's end points), polyline vertices. The map is the target of the encoder's
    auxiliary per-patch head, which teaches the encoder where geometry is long before the decoder
    has learned to ask. Same geometry as `prepare_image`: the sheet at the top-left, S across.
    """
    out = np.zeros((grid, grid), np.int32)
    scale = grid / max(sheet.width, sheet.height)
    last_col, last_row = (min(int(np.ceil(side * scale)), grid) - 1 for side in (sheet.width, sheet.height))
    for primitive in primitives:
        points = list(primitive.key_points())
        if isinstance(primitive, Rectangle):
            points += [(primitive.x + primitive.width, primitive.y), (primitive.x, primitive.y + primitive.height)]
        if isinstance(primitive, Arc):
            for angle in (primitive.start_angle, primitive.end_angle):
                points.append((primitive.x + primitive.radius * np.cos(np.radians(angle)),
                               primitive.y + primitive.radius * np.sin(np.radians(angle))))
        for x, y in points:
            col = min(max(int(x * scale), 0), last_col)  # a point on the sheet's edge is in its last patch
            row = min(max(int((sheet.height - y) * scale), 0), last_row)
            out[row, col] = TYPE_NAMES.index(primitive.TYPE) + 1
    return out


KEYPOINT_CLASSES = len(TYPE_NAMES) + 1  # + "no key point here"


def make_example_dict(image: np.ndarray, sheet: Sheet, primitives: Sequence[Primitive], image_size: int,
                      tokens: np.ndarray, keypoint_grid: int) -> dict:
    example = {"image": prepare_image(image, image_size), "tokens": tokens}
    if keypoint_grid:
        example["keypoints"] = keypoint_map(sheet, primitives, keypoint_grid)
    return example


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """Generator settings that change with training progress: easy drawings first.

    `stages` are (fraction of the run, max primitives, text height range); the last stage is the
    contract's full distribution. Depends only on the example index, so resuming is exact.
    """

    stages: tuple[tuple[float, int, tuple[float, float]], ...] = (
        (0.15, 3, (0.04, 0.05)),
        (0.4, 6, (0.03, 0.045)),
        (1.0, 12, (0.025, 0.04)),
    )

    def settings(self, fraction: float) -> tuple[int, tuple[float, float]]:
        for until, max_primitives, text_height in self.stages:
            if fraction < until:
                return max_primitives, text_height
        return self.stages[-1][1], self.stages[-1][2]


# A drawing whose program is too long is replaced by the same index drawn from seed + k * RETRY_SEED_STEP.
RETRY_SEED_STEP, RETRIES = 7919, 100
# The generator streams of the fixed test sets (scripts/make_test_sets.py); training never draws from them.
TEST_SET_SEEDS = {"clean": 9001, "sketch": 9002, "scan": 9003, "photo": 9004}


class SyntheticExamples:
    """Picklable index -> (image, tokens) function for Grain workers, rendering at the model's size."""

    def __init__(self, seed: int, image_size: int, max_tokens: int, style: str = "mixed",
                 curriculum: Curriculum | None = None, total_examples: int = 1, keypoint_grid: int = 0,
                 part_share: float = 0.4):
        self.seed, self.image_size, self.max_tokens, self.style = seed, image_size, max_tokens, style
        self.part_share = part_share
        self.curriculum, self.total_examples = curriculum, max(1, total_examples)
        self.keypoint_grid = keypoint_grid  # > 0: also a `keypoints` map of this many patches a side

    def generator_config(self, index: int):
        from cad2program.synth import GeneratorConfig
        config = GeneratorConfig(style=self.style, long_side_px=self.image_size, part_share=self.part_share)
        if self.curriculum is not None:
            max_primitives, text_height = self.curriculum.settings(index / self.total_examples)
            config = dataclasses.replace(config, max_primitives=max_primitives, text_height=text_height)
        return config

    def __call__(self, index: int) -> dict:
        from cad2program.synth import make_example
        for attempt in range(RETRIES):  # a program too long for max_tokens is replaced by the next draw
            example = make_example(self.seed + attempt * RETRY_SEED_STEP, int(index), self.generator_config(index))
            tokens = encode_target(example.sheet, example.primitives, self.max_tokens)
            if tokens is not None:
                return make_example_dict(example.image, example.sheet, example.primitives, self.image_size, tokens,
                                         self.keypoint_grid)
        raise RuntimeError(f"example {index}: no program fits in {self.max_tokens} tokens")


class FolderExamples:
    """Picklable index -> (image, tokens) over the good records of a dataset folder."""

    def __init__(self, records: list, image_size: int, max_tokens: int, keypoint_grid: int = 0):
        self.records = [r for r in records
                        if len(tokenizer.encode(r.sheet, r.primitives)) <= max_tokens]
        self.image_size, self.max_tokens, self.keypoint_grid = image_size, max_tokens, keypoint_grid

    def __len__(self):
        return len(self.records)

    def __call__(self, index: int) -> dict:
        from cad2program.contract.dataset import load_image
        record = self.records[int(index) % len(self.records)]
        return make_example_dict(load_image(record.image_path), record.sheet, record.primitives, self.image_size,
                                 encode_target(record.sheet, record.primitives, self.max_tokens), self.keypoint_grid)


def batches(examples, batch_size: int, start_example: int = 0, stop_example: int | None = None,
            shuffle_seed: int | None = None, workers: int = 0):
    """An iterator of numpy batches {"image": (B, S, S, 1), "tokens": (B, T)[, "keypoints": (B, G, G)]} from
    example `start_example`.

    `examples` maps an index to an example; folder datasets (finite) are shuffled per epoch and repeated.
    """
    import grain

    finite = hasattr(examples, "__len__")
    if finite:
        dataset = grain.MapDataset.range(len(examples))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(seed=shuffle_seed)
        dataset = dataset.repeat(None if stop_example is None else -(-stop_example // len(examples)))
    else:
        dataset = grain.MapDataset.range(stop_example if stop_example is not None else 2 ** 40)
    dataset = dataset[start_example:stop_example].map(examples).batch(batch_size, drop_remainder=True)
    iterable = dataset.to_iter_dataset()
    if workers > 0:
        from absl import flags
        if not flags.FLAGS.is_parsed():  # Grain's workers read absl flags; we have no absl main()
            flags.FLAGS.mark_as_parsed()
        iterable = iterable.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=2))
    return iter(iterable)
