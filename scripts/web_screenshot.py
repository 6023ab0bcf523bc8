"""Screenshot of the web page after a recognition, for the docs (docs/web_page.png).

Starts `cad2program serve` on a model, opens the page in headless Chromium (Debian's package, driven by
Playwright), uploads a generated drawing with its sheet size, waits for the overlay and saves a PNG.

    python3 scripts/web_screenshot.py --model runs/x/best_model.msgpack --out docs/web_page.png
"""

from __future__ import annotations

import argparse
import io
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from PIL import Image

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet, or 503 while warming up
            pass
        time.sleep(0.5)
    sys.exit(f"the server was not ready after {timeout_s:g} s")


def drawing_png(seed: int, index: int, folder: Path) -> tuple[Path, object]:
    from cad2program.synth import GeneratorConfig, make_example

    example = make_example(seed, index, GeneratorConfig(style="clean", long_side_px=768))
    path = folder / f"drawing_{seed}_{index}.png"
    Image.fromarray(example.image).save(path)
    return path, example.sheet


def screenshot(url: str, image: Path, sheet, out: Path, chromium: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url + "/")
        page.wait_for_selector("#status.pill-ok")
        page.set_input_files("#file-input", str(image))
        page.fill("#sheet-width", f"{sheet.width:g}")
        page.fill("#sheet-height", f"{sheet.height:g}")
        page.click("#recognise")
        page.wait_for_selector("svg.overlay")
        page.mouse.move(0, 0)
        time.sleep(0.3)  # let the hover transitions settle
        picture = Image.open(io.BytesIO(page.screenshot(full_page=True)))
        browser.close()
    picture.convert("RGB").save(out, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model file or training workdir for `cad2program serve`")
    parser.add_argument("--out", type=Path, default=Path("docs/web_page.png"))
    parser.add_argument("--seed", type=int, default=9001, help="generator stream of the drawing")
    parser.add_argument("--index", type=int, default=0, help="drawing number in that stream")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        sys.exit(f"{args.chromium}: no Chromium there (apt-get install chromium, or pass --chromium)")
    with tempfile.TemporaryDirectory() as folder:
        image, sheet = drawing_png(args.seed, args.index, Path(folder))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = open(Path(folder) / "server.log", "wb")
        process = subprocess.Popen([sys.executable, "-m", "cad2program.cli", "serve", "--model", args.model,
                                    "--port", str(port), "--max-batch", "1"], stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(url, process)
            screenshot(url, image, sheet, args.out, args.chromium)
        finally:
            process.terminate()
            process.wait(timeout=20)
            log.close()
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
