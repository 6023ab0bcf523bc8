"""Load benchmark of `cad2program serve` on loopback: throughput and latency, dynamic batching on vs off,
or the JAX engine vs the vLLM engine.

    python benchmarks/bench_server.py --quick            # ~2 minutes with a warm compile cache
    python benchmarks/bench_server.py --model M.msgpack  # a trained model instead of a random `cpu` one
    .venv-vllm/bin/python benchmarks/bench_server.py --compare engines --quick   # serve vs serve --engine vllm

For each mode (batching on, then off) it starts the real server in a subprocess, waits for /readyz, and
runs closed-loop clients (each sends its next request when the previous answer arrives) at 1, 8 and 32
concurrent clients for a fixed time through POST /serve/cad_model. The requests cycle through the
project's fixed test drawings (`testsets/`, four styles, about 6 primitives each, with their sheet
sizes), so programs have realistic and varied lengths.
Prints one JSON object: requests/s, p50/p99 latency, mean batch size (from /metrics) per level and mode,
and the throughput ratio batching/no batching. First, in this process, it times the model alone (no HTTP,
no image decoding) at batch 1 and at --max-batch on the same drawings: the ratio of those two rates is
the most that any batching could gain for this model on this machine (`model_ceiling`). Without --model, a
randomly initialised model of the `cpu` config is timed: its output is noise, but its compute per token
is that of a trained one. With `--compare engines`, both servers batch and the second decodes through
vLLM (`serve --engine vllm`, which starts a vLLM server on loopback; a `prefix` model, random by default;
run it with the vLLM environment's python, docs/vllm.md).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

from cad2program.errors import UserError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


TESTSETS = Path(__file__).resolve().parents[1] / "testsets"


def test_drawings(folders: list[Path]) -> list[tuple[bytes, dict]]:
    """(PNG bytes, sheet JSON) of every drawing in the given dataset folders, interleaved by folder.

    Raises UserError (missing folder, no usable drawing) with the reason."""
    from cad2program.contract.dataset import load_dataset

    per_folder = [[(r.image_path.read_bytes(), r.sheet.to_json())
                   for r in load_dataset(folder, logger=lambda message: None)] for folder in folders]
    drawings = [item for group in zip(*per_folder) for item in group]
    if not drawings:
        raise UserError("no drawings to send: give --drawings dataset folders (labels.jsonl + images)")
    return drawings


def random_model(folder: Path, fusion: str | None = None) -> Path:
    import dataclasses

    from flax import nnx

    from cad2program.model.configs import cpu
    from cad2program.model.modelfile import build_model, export_model

    config = cpu()
    if fusion:
        config = config.replace(model=dataclasses.replace(config.model, fusion=fusion))
    return export_model(folder / "cpu_random.msgpack", config, nnx.state(build_model(config)))


def model_ceiling(model: Path, drawings: list[tuple[bytes, dict]], max_batch: int, repeats: int = 3) -> dict:
    """The model alone on the first max_batch drawings, one at a time and as one batch (best of
    `repeats` after a compile): ms per drawing for the whole call and for the image encoder in it,
    and the ratio of the two rates."""
    import jax

    from cad2program.contract.dataset import load_image
    from cad2program.model.decode import embed_images
    from cad2program.contract.program import Sheet
    from cad2program.model.input_pipeline import prepare_image
    from cad2program.reading import Recognizer

    recognizer = Recognizer.load(model)
    graphdef, params = recognizer.split
    chosen = drawings[:max_batch]
    images = np.stack([prepare_image(load_image(png), recognizer.image_size) for png, _ in chosen])
    sheets = [Sheet(sheet["width"], sheet["height"]) for _, sheet in chosen]

    def ms_per_drawing(fn, n: int) -> float:
        fn()  # compiles this batch size
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return round(1000 * min(times) / n, 1)

    def one_at_a_time():
        return [recognizer.recognize_prepared(image[None], [sheet])[0] for image, sheet in zip(images, sheets)]

    def encode(batch):
        return jax.block_until_ready(embed_images((graphdef, params), batch))

    n = len(chosen)
    figures = {
        "batch_1": {"ms_per_drawing": ms_per_drawing(one_at_a_time, n),
                    "encoder_ms_per_drawing": ms_per_drawing(lambda: [encode(image[None]) for image in images], n)},
        f"batch_{n}": {"ms_per_drawing": ms_per_drawing(lambda: recognizer.recognize_prepared(images, sheets), n),
                       "encoder_ms_per_drawing": ms_per_drawing(lambda: encode(images), n)}}
    one, many = figures["batch_1"]["ms_per_drawing"], figures[f"batch_{n}"]["ms_per_drawing"]
    primitives = [len(r.primitives) for r in one_at_a_time()]
    return {**figures, "ratio": round(one / many, 2), "mean_primitives_written": round(float(np.mean(primitives)), 1)}


def start_server(model: Path, port: int, batching: bool, max_batch: int, max_wait_ms: float,
                 log_path: Path, engine: str = "jax") -> subprocess.Popen:
    command = [sys.executable, "-m", "cad2program.cli", "serve", "--model", str(model), "--port", str(port),
               "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--log-level", "warning",
               "--timeout", "600", "--engine", engine]
    if not batching:
        command.append("--no-batching")
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 900) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if requests.get(url + "/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"server not ready after {timeout_s} s")


def batch_stats(url: str) -> tuple[float, float]:
    """(number of batches, drawings in them) so far, from /metrics."""
    text = requests.get(url + "/metrics", timeout=10).text
    count = re.search(r"^cad2program_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^cad2program_batch_size_sum (\S+)$", text, re.M)
    return float(count.group(1)), float(total.group(1))


def run_level(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """Closed loop: `clients` threads, each sending its next request as soon as it has an answer; the
    requests take the bodies in turn."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    turns = itertools.count()

    def client():
        session = requests.Session()
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                response = session.post(url + "/serve/cad_model", data=bodies[next(turns) % len(bodies)],
                                        headers={"content-type": "application/json"}, timeout=600)
                ok = response.status_code == 200
                reason = f"HTTP {response.status_code}"
            except requests.RequestException as err:
                ok, reason = False, type(err).__name__
            with lock:
                (latencies.append(time.monotonic() - sent) if ok else errors.append(reason))

    batches_before, drawings_before = batch_stats(url)
    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started  # includes the requests in flight at the deadline
    batches_after, drawings_after = batch_stats(url)
    batches = batches_after - batches_before
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "seconds": round(elapsed, 2),
            "requests_per_s": round(len(latencies) / elapsed, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
            "mean_batch": round((drawings_after - drawings_before) / batches, 2) if batches else None}


def bench_mode(model: Path, bodies: list[bytes], batching: bool, levels: list[int], seconds: float, args,
               workdir: Path, engine: str = "jax") -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    mode = f"{engine}, " + ("batching" if batching else "no batching")
    log_path = workdir / f"server_{engine}_{'batching' if batching else 'no_batching'}.log"
    process = start_server(model, port, batching, args.max_batch, args.max_wait_ms, log_path, engine)
    try:
        ready_s = wait_ready(url, process)
        run_level(url, bodies, min(levels), 1.0)  # first requests: connection set-up, caches
        results = {}
        for clients in levels:
            print(f"  {mode}: {clients} clients for {seconds:g} s ...",
                  file=sys.stderr, flush=True)
            results[str(clients)] = run_level(url, bodies, clients, seconds)
        return {"ready_after_s": round(ready_s, 1), "levels": results}
    except Exception:
        sys.stderr.write(log_path.read_text(errors="replace")[-3000:])
        raise
    finally:
        process.terminate()
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: a random `cpu`-config model, for timing)")
    parser.add_argument("--quick", action="store_true", help="5 s per level instead of 20")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels (default: %(default)s)")
    parser.add_argument("--seconds", type=float, help="seconds per level (overrides --quick)")
    parser.add_argument("--compare", choices=("batching", "engines"), default="batching",
                        help="batching: batching on vs off (JAX); engines: the JAX engine vs --engine vllm, "
                             "both batching (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--drawings", nargs="+", type=Path,
                        default=sorted(p.parent for p in TESTSETS.glob("*/labels.jsonl")),
                        help="dataset folders whose drawings the requests cycle through (default: the "
                             "repository's testsets/* that hold labels.jsonl: the own four and ezdxf)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        workdir = Path(tmp)
        try:  # first, so that a wrong --drawings is said before minutes of set-up
            drawings = test_drawings(args.drawings)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        engines = args.compare == "engines"
        model = Path(args.model) if args.model else random_model(workdir, "prefix" if engines else None)
        load_before = os.getloadavg()
        bodies = [json.dumps({"data": base64.b64encode(png).decode(), "sheet": sheet}).encode()
                  for png, sheet in drawings]
        print(f"  the model alone, batch 1 and {args.max_batch} ...", file=sys.stderr, flush=True)
        ceiling = model_ceiling(model, drawings, args.max_batch)
        if engines:
            names = ("jax", "vllm")
            first = bench_mode(model, bodies, True, levels, seconds, args, workdir, "jax")
            second = bench_mode(model, bodies, True, levels, seconds, args, workdir, "vllm")
        else:
            names = ("batching", "no_batching")
            first = bench_mode(model, bodies, True, levels, seconds, args, workdir)
            second = bench_mode(model, bodies, False, levels, seconds, args, workdir)
    ratio = {c: round(first["levels"][c]["requests_per_s"] / second["levels"][c]["requests_per_s"], 2)
             for c in first["levels"] if second["levels"][c]["requests_per_s"]}
    report = {"model": args.model or f"random cpu config{' (prefix)' if engines else ''}",
              "drawings": [str(f) for f in args.drawings], "seconds_per_level": seconds,
              "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
              "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": [round(x, 2) for x in os.getloadavg()]},
              "model_ceiling": ceiling, names[0]: first, names[1]: second,
              f"throughput_ratio_{names[0]}_over_{names[1]}": ratio}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
