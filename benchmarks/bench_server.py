"""Load benchmark of `cad2program serve` on loopback: throughput and latency, dynamic batching on vs off.

    python benchmarks/bench_server.py --quick            # ~2 minutes with a warm compile cache
    python benchmarks/bench_server.py --model M.msgpack  # a trained model instead of a random `cpu` one

For each mode (batching on, then off) it starts the real server in a subprocess, waits for /readyz, and
runs closed-loop clients (each sends its next request when the previous answer arrives) at 1, 8 and 32
concurrent clients for a fixed time, every request the same PNG drawing through POST /serve/cad_model.
Prints one JSON object: requests/s, p50/p99 latency, mean batch size (from /metrics) per level and mode,
and the throughput ratio batching/no batching. Without --model, a randomly initialised model of the
`cpu` config is timed: its output is noise, but its compute per token is that of a trained one.
"""

from __future__ import annotations

import argparse
import base64
import io
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drawing_png() -> bytes:
    """An A4-shaped drawing, 842 x 595 px: a plate with a hole and a slot."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (842, 595), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((100, 100, 700, 480), outline=0, width=3)
    draw.ellipse((250, 200, 400, 350), outline=0, width=3)
    draw.line((500, 150, 650, 430), fill=0, width=3)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def random_model(folder: Path) -> Path:
    from flax import nnx

    from cad2program.configs import cpu
    from cad2program.recognizer import build_model, export_model

    config = cpu()
    return export_model(folder / "cpu_random.msgpack", config, nnx.state(build_model(config)))


def start_server(model: Path, port: int, batching: bool, max_batch: int, max_wait_ms: float,
                 log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "cad2program.cli", "serve", "--model", str(model), "--port", str(port),
               "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms), "--log-level", "warning",
               "--timeout", "600"]
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


def run_level(url: str, body: bytes, clients: int, seconds: float) -> dict:
    """Closed loop: `clients` threads, each sending its next request as soon as it has an answer."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client():
        session = requests.Session()
        while time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                response = session.post(url + "/serve/cad_model", data=body,
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


def bench_mode(model: Path, batching: bool, levels: list[int], seconds: float, args, workdir: Path) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / f"server_{'batching' if batching else 'no_batching'}.log"
    process = start_server(model, port, batching, args.max_batch, args.max_wait_ms, log_path)
    try:
        ready_s = wait_ready(url, process)
        body = json.dumps({"data": base64.b64encode(drawing_png()).decode()}).encode()
        run_level(url, body, min(levels), 1.0)  # first requests: connection set-up, caches
        results = {}
        for clients in levels:
            print(f"  {'batching' if batching else 'no batching'}: {clients} clients for {seconds:g} s ...",
                  file=sys.stderr, flush=True)
            results[str(clients)] = run_level(url, body, clients, seconds)
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
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        workdir = Path(tmp)
        model = Path(args.model) if args.model else random_model(workdir)
        load_before = os.getloadavg()
        on = bench_mode(model, True, levels, seconds, args, workdir)
        off = bench_mode(model, False, levels, seconds, args, workdir)
    speedup = {c: round(on["levels"][c]["requests_per_s"] / off["levels"][c]["requests_per_s"], 2)
               for c in on["levels"] if off["levels"][c]["requests_per_s"]}
    report = {"model": args.model or "random cpu config", "seconds_per_level": seconds,
              "max_batch": args.max_batch, "max_wait_ms": args.max_wait_ms,
              "machine": {"cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
                          "load_average_after": [round(x, 2) for x in os.getloadavg()]},
              "batching": on, "no_batching": off, "throughput_ratio_batching_over_none": speedup}
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
