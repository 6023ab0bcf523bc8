"""Where `predict`'s time goes: each pipeline stage's time per drawing, batch 1, warm.

    python3 benchmarks/stage_times.py testsets/clean testsets/ezdxf --count 20

Reads each folder's first `--count` drawings (their own sheets given, as `compare_predict.py` does)
with the shipped model (or `--model`), one stage at a time (`reading.pipeline.STAGES`), after one
warm-up drawing and `Recognizer.warm_up_rereading`. The image's preparation for the model and its ink
mask (computed once per look, lazily, by the first stage that needs it) are timed as stages of their
own, "prepare" and "ink", so that no stage carries them. Prints one JSON object: per folder and over
all, each stage's median, mean and 90th percentile (ms) and its share of the mean total; the total's
median and 90th percentile per drawing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from cad2program.contract.dataset import load_image, load_labels
from cad2program.reading import Recognizer
from cad2program.reading.pipeline import Drawing, run_stages


def stage_times(recognizer: Recognizer, image: np.ndarray, sheet) -> dict[str, float]:
    """One drawing read stage by stage: seconds per stage (plus "prepare" and "ink")."""
    times = {}
    start = time.perf_counter()
    drawing = Drawing.of(image, sheet, recognizer.image_size)
    times["prepare"] = time.perf_counter() - start
    start = time.perf_counter()
    drawing.first.ink  # noqa: B018 - computed here so that the first stage to use it is not charged
    times["ink"] = time.perf_counter() - start
    for stage in recognizer.stages:
        start = time.perf_counter()
        run_stages(recognizer, [drawing], [stage])
        times[stage.name] = time.perf_counter() - start
    return times


def summary(rows: list[dict[str, float]]) -> dict:
    names = list(dict.fromkeys(name for row in rows for name in row))
    totals = np.array([sum(row.values()) for row in rows])
    stages = {}
    for name in names:
        ms = np.array([row.get(name, 0.0) for row in rows]) * 1e3
        stages[name] = {"median": round(float(np.median(ms)), 1), "mean": round(float(ms.mean()), 1),
                        "p90": round(float(np.percentile(ms, 90)), 1),
                        "share": round(float(ms.mean() / (totals.mean() * 1e3)), 3)}
    return {"drawings": len(rows), "total_median_ms": round(float(np.median(totals) * 1e3), 1),
            "total_p90_ms": round(float(np.percentile(totals, 90) * 1e3), 1), "stages": stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="dataset folders (contract format)")
    parser.add_argument("--count", type=int, default=20, help="drawings per folder (the first ones)")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="skip compiling every re-reading shape first (quicker to start; the first "
                             "drawings then carry compile times)")
    args = parser.parse_args(argv)

    recognizer = Recognizer.load(args.model, max_batch=1)
    out = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "folders": {}}
    every: list[dict[str, float]] = []
    warmed = False
    for folder in args.folders:
        rows = []
        for record in load_labels(folder)[0][: args.count]:
            image = load_image(record.image_path)
            if not warmed:
                recognizer.recognize([image], [record.sheet])
                if not args.no_warm_up:
                    recognizer.warm_up_rereading()
                warmed = True
            rows.append(stage_times(recognizer, image, record.sheet))
        out["folders"][str(folder)] = summary(rows)
        every += rows
    out["all"] = summary(every)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
