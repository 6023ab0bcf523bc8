"""Starting a real `cad2program serve` for tests: a tiny random model, a free loopback port."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import requests

from cad2program.model.configs import tiny

START_TIMEOUT_S = 240  # a cold XLA cache compiles every batch size; warm starts take seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, timeout_s: float, process: subprocess.Popen | None = None) -> list[int]:
    """Polls /readyz until 200; returns the statuses seen (a 503 before warm-up ends is expected)."""
    deadline, seen = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            status = requests.get(url + "/readyz", timeout=5).status_code
            seen.append(status)
            if status == 200:
                return seen
        except requests.RequestException:  # not listening yet, or slow to answer on a loaded machine
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


@contextlib.contextmanager
def tiny_model_server(folder: Path, compile_cache: Path, *serve_args: str) -> Iterator[dict]:
    """Runs `cad2program serve` on a tiny random model until the block ends.

    Yields {"url", "process", "log", "ready_statuses", "model"}; on exit the server must still be running, and
    its log must hold no traceback.
    """
    from flax import nnx

    from cad2program.model.modelfile import build_model, export_model

    config = tiny()
    model = export_model(folder / "tiny.msgpack", config, nnx.state(build_model(config)))
    port = free_port()
    log_path = folder / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "cad2program.cli", "serve", "--model", str(model), "--port", str(port),
             "--compile-cache", str(compile_cache), *serve_args], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        statuses = wait_ready(url, START_TIMEOUT_S, process)
        yield {"url": url, "process": process, "log": log_path, "ready_statuses": statuses, "model": model}
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert "Traceback" not in log_path.read_text(errors="replace"), log_path.read_text(errors="replace")[-3000:]
