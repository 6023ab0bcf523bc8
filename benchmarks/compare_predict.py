"""`predict` latency of two checkouts side by side: this one and another (say, the commit before).

    git worktree add /tmp/base HEAD~3
    python3 benchmarks/compare_predict.py --base /tmp/base --folders testsets/clean testsets/sketch \
        testsets/scan testsets/photo testsets/ezdxf --count 20 --repeats 3

Each checkout's package runs in a worker process of its own (the checkout first on its PYTHONPATH),
loads the same model file (default: this checkout's packaged model), reads one drawing first and
warms up its re-reading (`Recognizer.warm_up_rereading`), as a server does. Then every drawing is
read by one worker and at once by the other, `--repeats` times in turn, so that both meet the same
machine load; a drawing's time is the median of its repeats. Prints one JSON object: per folder,
both checkouts' median, 90th percentile and largest time per drawing (ms, batch 1, its own sheet
given) and the ratios this/base; the machine's noise shows in how far two runs' ratios differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def worker(model: str) -> None:
    """The worker's loop: a labelled drawing per line of stdin ("image path<TAB>width<TAB>height") ->
    the seconds `recognize` took on it, one per line of stdout. (The package is imported here: from the
    checkout this worker was started in.)"""
    from cad2program.contract.dataset import load_image
    from cad2program.contract.program import Sheet
    from cad2program.reading import Recognizer

    recognizer = Recognizer.load(model, max_batch=1)
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever the package prints stays off the answers
    print(json.dumps({"package": str(Path(sys.modules["cad2program"].__file__).parent)}), file=out, flush=True)
    warmed = False
    for line in sys.stdin:
        path, width, height = line.rstrip("\n").split("\t")
        image, sheet = load_image(Path(path)), Sheet(float(width), float(height))
        if not warmed:
            recognizer.recognize([image], [sheet])
            recognizer.warm_up_rereading()
            warmed = True
        start = time.perf_counter()
        recognizer.recognize([image], [sheet])
        print(time.perf_counter() - start, file=out, flush=True)


class Worker:
    def __init__(self, checkout: Path, model: Path):
        env = {**os.environ, "PYTHONPATH": f"{checkout}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", str(model)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                        cwd=checkout)
        first = self.process.stdout.readline()
        if not first:
            raise SystemExit(f"error: no worker started in {checkout} (its errors are above)")
        self.package = json.loads(first)["package"]

    def seconds(self, image: Path, width: float, height: float) -> float:
        self.process.stdin.write(f"{image}\t{width}\t{height}\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise SystemExit(f"error: the worker of {self.package} stopped (its errors are above)")
        return float(answer)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def summary(times: list[float]) -> dict:
    ms = 1000 * np.asarray(times)
    return {"median_ms": round(float(np.median(ms)), 1), "p90_ms": round(float(np.percentile(ms, 90)), 1),
            "max_ms": round(float(ms.max()), 1)}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
        return
    sys.path.insert(0, str(HERE))
    from cad2program.contract.dataset import load_labels
    from cad2program.model.modelfile import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (a worktree of the commit before)")
    parser.add_argument("--folders", type=Path, nargs="+", required=True, help="labelled dataset folders")
    parser.add_argument("--count", type=int, default=20, help="drawings from the start of each folder (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="readings of each drawing by each checkout (default 3)")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="the model file both read with "
                                                                          "(default: this checkout's packaged model)")
    args = parser.parse_args()
    if not (args.base / "cad2program" / "__init__.py").is_file():
        parser.error(f"--base {args.base}: no cad2program package there (a checkout of this project is needed)")
    if not args.model.is_file():
        parser.error(f"--model {args.model}: no such file")
    folders = [(folder, load_labels(folder)[0][:args.count]) for folder in args.folders]
    this, base = Worker(HERE, args.model.resolve()), Worker(args.base.resolve(), args.model.resolve())
    report = {"this": this.package, "base": base.package, "model": str(args.model), "repeats": args.repeats,
              "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "folders": {}}
    try:
        for folder, records in folders:
            times: dict[str, list[float]] = {"this": [], "base": []}
            for record in records:
                job = (record.image_path.resolve(), record.sheet.width, record.sheet.height)
                runs: dict[str, list[float]] = {"this": [], "base": []}
                for repeat in range(args.repeats):  # the order alternates: neither always reads a warm cache
                    for name, w in (("this", this), ("base", base))[::1 if repeat % 2 == 0 else -1]:
                        runs[name].append(w.seconds(*job))
                for name in times:
                    times[name].append(statistics.median(runs[name]))
            row = {name: summary(ts) for name, ts in times.items()}
            row["ratio_median"] = round(row["this"]["median_ms"] / row["base"]["median_ms"], 3)
            row["ratio_p90"] = round(row["this"]["p90_ms"] / row["base"]["p90_ms"], 3)
            row["drawings"] = len(records)
            report["folders"][str(folder)] = row
            print(f"{folder}: {json.dumps(row)}", file=sys.stderr, flush=True)
    finally:
        this.close()
        base.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
