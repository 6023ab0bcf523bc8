"""The server's limits (docs/reliability.md), on the real app in a uvicorn thread around a fake model:
JSON depth, data URL types, max_tokens, the body read timeout, the connection limit, back-pressure
(--max-queue: 503 with Retry-After, shown by /metrics) and work bounded by pixels."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image, ImageDraw

from server_helpers import free_port, wait_ready

JSON_ENDPOINTS = ("/serve/cad_model", "/v1/chat/completions", "/v1/export/dxf")


def png(size=(200, 150), mode="L") -> bytes:
    image = Image.new(mode, size, 255)
    ImageDraw.Draw(image).rectangle((20, 20, 120, 100), outline=0, width=2)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


PNG_B64 = base64.b64encode(png()).decode()


def chat(url: str, image_url: str = f"data:image/png;base64,{PNG_B64}", **extra) -> dict:
    return {"model": "cad2program", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": image_url}}]}], **extra}


class FakeRecognizer:
    """Answers one circle a drawing after `delay_s`; records the size of every image it is given."""

    image_size = 16
    refine = False

    def __init__(self, delay_s: float = 0.0):
        from types import SimpleNamespace

        self.config = SimpleNamespace(model=SimpleNamespace(num_image_tokens=5))
        self.delay_s = delay_s

    def recognize_prepared(self, images, sheets):
        from cad2program.contract.program import Circle
        from cad2program.reading import Recognition

        time.sleep(self.delay_s)
        return [Recognition(s, [Circle(10, 10, 5)], [0.5], valid=True) for s in sheets]


@pytest.fixture
def serve():
    """Starts the app with `serve`'s uvicorn settings in a thread; yields start(recognizer, settings, **config)."""
    import uvicorn

    from cad2program.commands.serve import server_config
    from cad2program.server.app import create_app

    started = []

    def start(recognizer, settings, max_connections: int = 256):
        port = free_port()
        app = create_app(recognizer, settings)
        server = uvicorn.Server(server_config(app, "127.0.0.1", port, max_connections, "warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread, app))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, 30)
        return url
    yield start
    for server, thread, app in started:
        server.should_exit = True
        thread.join(10)
        # Whatever the test sent, nothing was a bug.
        assert app.state.metrics.internal_errors._value.get() == 0


def metric(url: str, name: str) -> float:
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def test_json_nested_5000_deep_is_a_400_on_every_json_endpoint(serve):
    from cad2program.server.settings import ServerSettings

    url = serve(FakeRecognizer(), ServerSettings(max_batch=1))
    bodies = ["[" * 5000 + "]" * 5000, '{"data": ' + "[" * 5000 + "]" * 5000 + "}",
              '{"sheet": ' + '{"a": ' * 3000 + "1" + "}" * 3001]
    for endpoint in JSON_ENDPOINTS:
        for body in bodies:
            answer = requests.post(url + endpoint, data=body, headers={"Content-Type": "application/json"}, timeout=10)
            assert answer.status_code == 400, (endpoint, answer.text[:200])
            assert "nests" in answer.json()["error"]["message"]
    # Brackets inside strings are text, not nesting.
    text = json.dumps({"data": PNG_B64, "sheet": {"width": 200, "height": 150}, "note": "[" * 100})
    from cad2program.server.app import json_depth
    assert json_depth(text.encode()) == 2


def test_a_data_url_must_hold_an_image_and_its_scheme_is_case_insensitive(serve):
    from cad2program.server.settings import ServerSettings

    url = serve(FakeRecognizer(), ServerSettings(max_batch=1))
    html = requests.post(url + "/v1/chat/completions", json=chat(url, f"data:text/html;base64,{PNG_B64}"), timeout=10)
    assert html.status_code == 400 and "'text/html', not an image" in html.json()["error"]["message"]
    upper = requests.post(url + "/v1/chat/completions", json=chat(url, f"DATA:image/PNG;BASE64,{PNG_B64}"), timeout=10)
    assert upper.status_code == 200, upper.text
    plain = requests.post(url + "/v1/chat/completions", json=chat(url, "data:image/png,abc"), timeout=10)
    assert plain.status_code == 400 and "not base64" in plain.json()["error"]["message"]
    as_field = requests.post(url + "/serve/cad_model", json={"data": f"data:application/pdf;base64,{PNG_B64}"},
                             timeout=10)
    assert as_field.status_code == 400 and "'application/pdf', not an image" in as_field.json()["error"]["message"]
    assert requests.post(url + "/serve/cad_model", json={"data": f"Data:image/png;base64,{PNG_B64}"},
                         timeout=10).status_code == 200


@pytest.mark.parametrize("value", [-1, 0, 1.5, "10", True, [5]])
def test_max_tokens_must_be_a_whole_number_of_at_least_one(serve, value):
    from cad2program.server.settings import ServerSettings

    url = serve(FakeRecognizer(), ServerSettings(max_batch=1))
    for field in ("max_tokens", "max_completion_tokens"):
        answer = requests.post(url + "/v1/chat/completions", json=chat(url, **{field: value}), timeout=10)
        assert answer.status_code == 400 and answer.json()["error"]["param"] == field
    assert requests.post(url + "/v1/chat/completions", json=chat(url, max_tokens=64), timeout=10).status_code == 200


def read_all(sock: socket.socket, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection (or `limit_s` passes)."""
    sock.settimeout(limit_s)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except socket.timeout:
        pass
    return b"".join(chunks)


def test_a_body_that_does_not_arrive_is_a_408_and_the_connection_is_closed(serve):
    from cad2program.server.settings import ServerSettings

    url = serve(FakeRecognizer(), ServerSettings(max_batch=1, body_timeout_s=1.0))
    port = int(url.rsplit(":", 1)[1])
    beginnings = {"/serve/cad_model": ("application/json", '{"data"'),
                  "/v1/recognize": ("multipart/form-data; boundary=x",
                                    '--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n\r\nabc')}
    for endpoint, (kind, beginning) in beginnings.items():
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"POST {endpoint} HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                         f"Content-Length: 1000\r\n\r\n{beginning}".encode())
            started = time.monotonic()
            answer = read_all(sock, 10)
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 1 s" in answer
        assert waited < 5  # the body timeout, not for ever; read_all returned because the server closed


def test_connections_over_the_limit_get_503(serve):
    from cad2program.server.settings import ServerSettings

    url = serve(FakeRecognizer(), ServerSettings(max_batch=1), max_connections=3)
    port = int(url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    time.sleep(0.3)
    try:
        assert requests.get(url + "/healthz", timeout=5).status_code == 503
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    assert requests.get(url + "/healthz", timeout=5).status_code == 200


def test_over_max_queue_requests_get_503_with_retry_after_at_once(serve):
    from cad2program.server.settings import ServerSettings

    url = serve(FakeRecognizer(delay_s=0.5), ServerSettings(max_batch=1, max_wait_ms=0, max_queue=2))
    assert metric(url, "cad2program_max_queue") == 2
    seen_in_flight = []

    def watch():
        for _ in range(10):
            seen_in_flight.append(metric(url, "cad2program_requests_in_flight"))
            time.sleep(0.1)
    watcher = threading.Thread(target=watch)
    watcher.start()

    def post(_):
        started = time.monotonic()
        answer = requests.post(url + "/serve/cad_model", json={"data": PNG_B64}, timeout=30)
        return answer, time.monotonic() - started
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(post, range(6)))
    watcher.join()
    busy = [(a, s) for a, s in results if a.status_code == 503]
    assert sum(a.status_code == 200 for a, _ in results) >= 2 and len(busy) >= 2
    assert all(a.headers.get("Retry-After") == "1" and "--max-queue 2" in a.json()["error"]["message"]
               and s < 0.4 for a, s in busy)  # refused at once, not after waiting behind the model
    assert max(seen_in_flight) == 2


def big_png(width=7000, height=7000) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 255).save(out, "PNG")
    return out.getvalue()


def test_a_large_image_is_scaled_down_as_it_is_decoded():
    from cad2program.contract.dataset import load_image

    data = big_png()
    assert len(data) < 200_000  # a few hundred KB of file, 49 Mpx of pixels
    grey = load_image(data, work_pixels=6_000_000)
    assert grey.size <= 6_000_000 and abs(grey.shape[1] / grey.shape[0] - 1) < 0.01
    jpeg = io.BytesIO()
    Image.new("RGB", (6000, 4000), (255, 255, 255)).save(jpeg, "JPEG")
    grey = load_image(jpeg.getvalue(), work_pixels=1_000_000)
    assert grey.size <= 1_000_000 and abs(grey.shape[1] / grey.shape[0] - 1.5) < 0.01
    assert load_image(png(), work_pixels=6_000_000).shape == (150, 200)  # small images are left alone


def test_the_pixel_budget_lets_decodes_through_only_as_far_as_it_goes():
    from cad2program.contract.dataset import PixelBudget

    budget = PixelBudget(100)
    order = []

    def decode(name, pixels, seconds):
        with budget.hold(pixels, timeout_s=5):
            order.append(f"{name} in")
            time.sleep(seconds)
            order.append(f"{name} out")
    first = threading.Thread(target=decode, args=("a", 60, 0.3))
    first.start()
    time.sleep(0.05)
    decode("b", 60, 0)  # waits until "a" is done: 120 > 100
    first.join()
    assert order == ["a in", "a out", "b in", "b out"]
    with budget.hold(1000):  # larger than the budget: runs alone
        with pytest.raises(TimeoutError):
            with budget.hold(1, timeout_s=0.1):
                pass


@pytest.mark.parametrize("uploads", [4, pytest.param(16, marks=pytest.mark.slow)])
def test_concurrent_49_megapixel_uploads_are_all_served_with_bounded_memory(serve, monkeypatch, uploads):
    import psutil

    import cad2program.reading.pipeline as pipeline_module
    from cad2program.server.settings import ServerSettings

    shapes = []  # what the server prepares for the model (`reading.pipeline.Drawing.of`)
    prepare_image = pipeline_module.prepare_image
    monkeypatch.setattr(pipeline_module, "prepare_image", lambda image, size: (shapes.append(image.shape),
                                                                          prepare_image(image, size))[1])
    url = serve(FakeRecognizer(), ServerSettings(max_batch=uploads, request_timeout_s=60))
    data = big_png()
    process = psutil.Process()
    before, peak, done = process.memory_info().rss, [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.02)
    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(uploads) as pool:
        answers = list(pool.map(lambda _: requests.post(url + "/v1/recognize", files={"file": ("big.png", data)},
                                                        timeout=120), range(uploads)))
    done.set()
    sampler.join()
    assert [a.status_code for a in answers] == [200] * uploads, answers[0].text
    assert all(h * w <= 6_000_000 for h, w in shapes)  # scaled down as decoded, before anything else saw it
    assert answers[0].json()["sheet"] == {"width": 297, "height": 297}
    # 16 x 49 MB of grey pixels would be 780 MB; the budget lets one such decode run at a time.
    assert peak[0] - before < 600 * 2**20, f"{(peak[0] - before) / 2**20:.0f} MiB more at the peak"


def test_serve_help_documents_the_limits_and_its_defaults_are_the_apps(capsys):
    import argparse

    from cad2program.cli import main
    from cad2program.commands import serve
    from cad2program.server.settings import ServerSettings

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = capsys.readouterr().out
    assert all(flag in text for flag in ("--max-queue", "--body-timeout", "--max-connections", "--work-mpx", "503"))
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args, defaults = parser.parse_args([]), ServerSettings()
    assert (args.max_queue, args.body_timeout, round(args.work_mpx * 1e6)) == (
        defaults.max_queue, defaults.body_timeout_s, defaults.work_pixels)
    assert main(["serve", "--max-queue", "0"]) == 2 and "--max-queue" in capsys.readouterr().err
