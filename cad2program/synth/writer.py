"""Writing generated drawings as a dataset folder (the contract's section 4), in parallel.

Workers render chunks of consecutive indices and return encoded files; the parent writes them in
index order, so the folder is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import cv2
from tqdm import tqdm

from cad2program.synth import GeneratorConfig, make_example

CHUNK = 16  # drawings per task: large enough to amortise the hand-off, small enough to balance


def encode_example(seed: int, index: int, config: GeneratorConfig, name_width: int) -> tuple[str, bytes, dict]:
    """(relative image path, file bytes, label line) of drawing `index`."""
    example = make_example(seed, index, config)
    if example.encoded is not None:  # scans and photos: the very JPEG the image was decoded from
        path, data = f"images/{index:0{name_width}d}.jpg", example.encoded
    else:
        ok, buffer = cv2.imencode(".png", example.image[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 3])
        assert ok
        path, data = f"images/{index:0{name_width}d}.png", buffer.tobytes()
    primitives = [p.to_json() for p in example.primitives]
    for i in example.unannotated:
        primitives[i]["annotated"] = False
    label = {"image": path, "sheet": example.sheet.to_json(), "primitives": primitives, "style": example.style}
    return path, data, label


def _encode_chunk(task: tuple[int, int, int, GeneratorConfig, int]) -> list[tuple[str, bytes, dict]]:
    seed, start, stop, config, name_width = task
    cv2.setNumThreads(1)  # one process per core already
    return [encode_example(seed, i, config, name_width) for i in range(start, stop)]


def write_dataset(out_dir, count: int, seed: int, config: GeneratorConfig = GeneratorConfig(),
                  workers: int | None = None, progress: bool = True) -> Path:
    """Writes `count` drawings to `out_dir` (images/ + labels.jsonl) and returns its path."""
    problems = config.problems()
    if problems:
        raise ValueError("bad generator config: " + "; ".join(problems))
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    name_width = max(6, len(str(max(count - 1, 0))))
    tasks = [(seed, start, min(start + CHUNK, count), config, name_width) for start in range(0, count, CHUNK)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    bar = tqdm(total=count, unit="drawing", disable=not progress, desc="generate")
    with open(out / "labels.jsonl", "w", encoding="utf-8") as labels:
        def save(results):
            for path, data, label in results:
                (out / path).write_bytes(data)
                labels.write(json.dumps(label, separators=(", ", ": ")) + "\n")
            bar.update(len(results))

        if workers == 1:
            for task in tasks:
                save(_encode_chunk(task))
        else:
            context = multiprocessing.get_context("spawn" if os.name == "nt" else "forkserver")
            with context.Pool(workers) as pool:
                for results in pool.imap(_encode_chunk, tasks):
                    save(results)
    bar.close()
    return out
