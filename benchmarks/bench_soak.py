"""Soak benchmark of `cad2program serve` on loopback: many clients, bad and very large images mixed in.

    python benchmarks/bench_soak.py --clients 8 --requests 20            # a few minutes on 2 cores
    nice -n 10 python benchmarks/bench_soak.py --clients 32 --requests 200 --max-seconds 3600

It starts the real server in a subprocess (the package's model unless --model), waits for /readyz, then
runs closed-loop clients: each sends --requests requests to POST /serve/cad_model, one after the other.
Each request is, at random (seeded): a bad one (--bad share: random bytes, a truncated PNG, a text/html
data URL, JSON nested 5000 deep, a negative sheet), a large one (--large share: a 7000 x 7000 PNG, 49
Mpx, a few hundred KB), or a good one (the drawings of --drawings, with their sheets). The run stops
after --max-seconds whatever is left. It prints one JSON object: per kind the count of each status,
errors (a good or large request not answered 200, a bad one answered >= 500 or not 4xx; 503s from
--max-queue are counted apart, as 'busy'), p50/p95/p99 latency per kind, throughput, and the server's
resident memory at start, after the first 100 answers, at the middle, at the end and at its peak.
Loopback only: nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def good_drawings(folder: Path, limit: int = 64) -> list[dict]:
    from cad2program.contract.dataset import load_dataset

    records = load_dataset(folder, logger=lambda message: None)[:limit]
    return [{"data": base64.b64encode(r.image_path.read_bytes()).decode(), "sheet": r.sheet.to_json()}
            for r in records]


def large_request() -> dict:
    """A 49 Mpx drawing: a rectangle and a circle on a white 7000 x 7000 sheet, a few hundred KB as a PNG."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (7000, 7000), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((1000, 1500, 6000, 5500), outline=0, width=12)
    draw.ellipse((2500, 2500, 4500, 4500), outline=0, width=12)
    out = io.BytesIO()
    image.save(out, "PNG")
    return {"data": base64.b64encode(out.getvalue()).decode(), "sheet": {"width": 297, "height": 297}}


def bad_bodies(good: dict) -> list[tuple[str, bytes]]:
    """(name, JSON body) of requests every one of which must get a 4xx."""
    png = base64.b64decode(good["data"])
    return [
        ("random bytes", json.dumps({"data": base64.b64encode(os.urandom(2000)).decode()}).encode()),
        ("truncated png", json.dumps({"data": base64.b64encode(png[: len(png) // 2]).decode()}).encode()),
        ("html data url", json.dumps({"data": "data:text/html;base64," + good["data"]}).encode()),
        ("nested 5000", ("[" * 5000 + "]" * 5000).encode()),
        ("negative sheet", json.dumps({"data": good["data"], "sheet": {"width": -5, "height": 100}}).encode()),
        ("not json", b"{\"data\": "),
    ]


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def start_server(args, folder: Path) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "cad2program.cli", "serve", "--port", str(port), "--max-queue",
               str(args.max_queue), "--timeout", str(args.timeout), *args.serve_arg]
    if args.model:
        command += ["--model", args.model]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + args.start_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with status {process.returncode}; see {log}")
        try:
            if requests.get(url + "/readyz", timeout=5).status_code == 200:
                return process, url, log
        except requests.RequestException:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"the server was not ready after {args.start_timeout} s; see {log}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32, help="concurrent closed-loop clients (default 32)")
    parser.add_argument("--requests", type=int, default=200, help="requests per client (default 200)")
    parser.add_argument("--bad", type=float, default=0.10, help="share of bad requests (default 0.10)")
    parser.add_argument("--large", type=float, default=0.05, help="share of 49 Mpx images (default 0.05)")
    parser.add_argument("--drawings", type=Path, default=ROOT / "testsets" / "clean",
                        help="dataset folder of the good requests (default testsets/clean)")
    parser.add_argument("--model", help="model file (default: the package's)")
    parser.add_argument("--max-queue", type=int, default=64, help="the server's --max-queue (default 64)")
    parser.add_argument("--timeout", type=float, default=60, help="the server's --timeout in s (default 60)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="another argument for `cad2program serve` (repeatable, e.g. --serve-arg=--one-look)")
    parser.add_argument("--max-seconds", type=float, default=1800, help="stop sending after this long (default 1800)")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds to wait for /readyz")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    goods = good_drawings(args.drawings)
    large = json.dumps(large_request()).encode()
    bads = bad_bodies(goods[0])
    total = args.clients * args.requests
    results: list[tuple[str, int, float]] = []  # (kind, status, seconds); status 0: no answer
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as folder:
        process, url, log = start_server(args, Path(folder))
        memory = {"start": rss_bytes(process.pid)}
        peak = [memory["start"]]
        stop_at = time.monotonic() + args.max_seconds
        finished = threading.Event()

        def sample():
            while not finished.is_set():
                rss = rss_bytes(process.pid)
                with lock:
                    done = len(results)
                peak[0] = max(peak[0], rss)
                if done >= 100 and "after_100" not in memory:
                    memory["after_100"] = rss
                if done >= total // 2 and "middle" not in memory:
                    memory["middle"] = rss
                time.sleep(0.25)

        def client(index: int):
            rng = random.Random(args.seed * 1000 + index)
            session = requests.Session()
            for _ in range(args.requests):
                if time.monotonic() > stop_at:
                    return
                draw = rng.random()
                if draw < args.bad:
                    kind, body = "bad", rng.choice(bads)[1]
                elif draw < args.bad + args.large:
                    kind, body = "large", large
                else:
                    kind, body = "good", json.dumps(rng.choice(goods)).encode()
                started = time.monotonic()
                try:
                    status = session.post(url + "/serve/cad_model", data=body, timeout=args.timeout + 30,
                                          headers={"Content-Type": "application/json"}).status_code
                except requests.RequestException:
                    status = 0
                with lock:
                    results.append((kind, status, time.monotonic() - started))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        began = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - began
        finished.set()
        sampler.join()
        memory["end"] = rss_bytes(process.pid)
        alive = process.poll() is None and requests.get(url + "/healthz", timeout=10).status_code == 200
        metrics = requests.get(url + "/metrics", timeout=10).text
        process.terminate()
        process.wait(30)
        tracebacks = log.read_text(errors="replace").count("Traceback")

    report: dict = {"clients": args.clients, "requests_per_client": args.requests, "sent": len(results),
                    "planned": total, "wall_seconds": round(wall, 1),
                    "requests_per_s": round(len(results) / wall, 2) if wall else None,
                    "server_alive_after": alive, "tracebacks_in_server_log": tracebacks,
                    "internal_errors_metric": next((float(line.split()[1]) for line in metrics.splitlines()
                                                    if line.startswith("cad2program_internal_errors_total")), None)}
    errors = 0
    for kind in ("good", "large", "bad"):
        mine = [(status, seconds) for k, status, seconds in results if k == kind]
        statuses: dict[str, int] = {}
        for status, _ in mine:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        if kind == "bad":
            wrong = sum(1 for status, _ in mine if not 400 <= status < 500)
        else:
            wrong = sum(1 for status, _ in mine if status not in (200, 503))
        errors += wrong
        answered = [seconds for status, seconds in mine if status == 200 or kind == "bad"]
        report[kind] = {"sent": len(mine), "statuses": statuses, "errors": wrong,
                        "busy_503": statuses.get("503", 0) if kind != "bad" else 0,
                        "p50_s": percentile(answered, 50), "p95_s": percentile(answered, 95),
                        "p99_s": percentile(answered, 99), "max_s": round(max(answered), 3) if answered else None}
    report["errors"] = errors
    report["rss_mib"] = {k: round(v / 2**20) for k, v in {**memory, "peak": peak[0]}.items()}
    if "after_100" in memory:
        report["rss_end_vs_after_100"] = round(memory["end"] / memory["after_100"] - 1, 3)
    print(json.dumps(report, indent=2))
    return 1 if errors or not alive or tracebacks else 0


if __name__ == "__main__":
    sys.exit(main())
