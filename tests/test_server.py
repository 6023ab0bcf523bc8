"""`cad2program serve`: the real server (a subprocess on a free loopback port, a tiny random model) and,
for timing-dependent behaviour (warm-up, timeouts, bugs), the real app in a uvicorn thread around a fake model."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from PIL import Image, ImageDraw

from server_helpers import free_port, tiny_model_server, wait_ready

BODY_LIMIT_MB = 2


def drawing_bytes(fmt: str = "PNG", size: tuple[int, int] = (200, 150)) -> bytes:
    image = Image.new("L", size, 255)
    ImageDraw.Draw(image).rectangle((20, 20, 120, 100), outline=0, width=2)
    buf = io.BytesIO()
    image.save(buf, fmt)
    return buf.getvalue()


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header claiming huge dimensions over a tiny body: decoding it would need 10 GB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PNG = drawing_bytes("PNG")
JPEG = drawing_bytes("JPEG")


def metric_values(text: str, name: str) -> dict[str, float]:
    """Prometheus text -> {label string: value} for one metric name."""
    out = {}
    for line in text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})?\s+(\S+)$", line)
        if match:
            out[match.group(1) or ""] = float(match.group(2))
    return out


# ----------------------------------------------------------------------------------------------
# The real server
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, request):
    """`cad2program serve` on a tiny random model: max batch 4, max wait 200 ms, a 2 MB body limit."""
    folder = tmp_path_factory.mktemp("server")
    cache = request.config.cache.mkdir("xla") if getattr(request.config, "cache", None) else folder / "xla"
    with tiny_model_server(folder, cache, "--max-batch", "4", "--max-wait-ms", "200",
                           "--max-body-mb", str(BODY_LIMIT_MB)) as running:
        yield running
        # Whatever the tests sent, nothing was a bug: no 500 counted, no traceback logged.
        text = requests.get(running["url"] + "/metrics", timeout=5).text
        assert not [k for k in metric_values(text, "cad2program_requests_total") if 'status="500"' in k]
        assert metric_values(text, "cad2program_internal_errors_total")[""] == 0


def alive(url: str) -> bool:
    return requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}


def test_health_readiness_and_docs(server):
    url = server["url"]
    assert alive(url)
    ready = requests.get(url + "/readyz", timeout=5)
    assert ready.status_code == 200 and ready.json()["max_batch"] == 4
    docs = requests.get(url + "/docs", timeout=5)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = requests.get(url + "/openapi.json", timeout=5).json()["paths"]
    assert {"/serve/cad_model", "/v1/recognize", "/v1/chat/completions", "/healthz", "/readyz"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/recognize"]["post"]["requestBody"]["content"]


def test_json_endpoint_with_and_without_sheet(server):
    url = server["url"]
    with_sheet = requests.post(url + "/serve/cad_model", json={"data": b64(PNG), "sheet": {"width": 200, "height": 150}},
                               timeout=60)
    assert with_sheet.status_code == 200, with_sheet.text
    body = with_sheet.json()
    assert body["sheet"] == {"width": 200, "height": 150}
    assert isinstance(body["program"], str)
    assert all("type" in p and 0 <= p["confidence"] <= 1 for p in body["primitives"])
    # A JPEG without a sheet: the sheet follows the image's 4:3 shape, longer side 297 mm.
    inferred = requests.post(url + "/serve/cad_model", json={"data": b64(JPEG)}, timeout=60)
    assert inferred.status_code == 200, inferred.text
    assert inferred.json()["sheet"] == {"width": 297, "height": 223}


def test_the_server_answers_what_recognize_does_with_and_without_a_sheet(server):
    from cad2program.reading import Recognizer
    from cad2program.synth import GeneratorConfig, make_example

    example = make_example(35, 0, GeneratorConfig(long_side_px=256, part_share=0.0))  # one the random model reads something on
    buf = io.BytesIO()
    Image.fromarray(example.image).save(buf, "PNG")
    sheet = {"width": example.sheet.width, "height": example.sheet.height}
    answer = requests.post(server["url"] + "/serve/cad_model", json={"data": b64(buf.getvalue()), "sheet": sheet},
                           timeout=60)
    assert answer.status_code == 200, answer.text
    recognizer = Recognizer.load(server["model"])
    [expected] = recognizer.recognize([example.image], [example.sheet])
    assert expected.primitives and answer.json()["program"] == expected.program
    # Without a sheet: the sheet inferred (or found from the numbers) as `predict` finds it.
    unsized = requests.post(server["url"] + "/serve/cad_model", json={"data": b64(buf.getvalue())}, timeout=60)
    assert unsized.status_code == 200, unsized.text
    [expected] = recognizer.recognize([example.image])
    assert unsized.json()["sheet"] == expected.sheet.to_json() and unsized.json()["program"] == expected.program


def test_multipart_endpoint(server):
    url = server["url"]
    response = requests.post(url + "/v1/recognize", files={"file": ("drawing.png", PNG, "image/png")},
                             data={"sheet_width": "200", "sheet_height": "150"}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sheet"] == {"width": 200, "height": 150}
    assert set(body) >= {"primitives", "program"}
    assert all("confidence" in p for p in body["primitives"])
    # The same drawing through the JSON endpoint gives the same program (one model, greedy decoding).
    same = requests.post(url + "/serve/cad_model", json={"data": b64(PNG), "sheet": {"width": 200, "height": 150}},
                         timeout=60)
    assert same.json()["program"] == body["program"]


JSON = "/serve/cad_model"
UPLOAD = "/v1/recognize"
CHAT = "/v1/chat/completions"


def chat_body(url: str, text: str | None = None, **extra) -> dict:
    content = [{"type": "image_url", "image_url": {"url": url}}]
    if text is not None:
        content.insert(0, {"type": "text", "text": text})
    return {"model": "tiny", "messages": [{"role": "user", "content": content}], **extra}


PNG_URL = "data:image/png;base64," + b64(PNG)
BAD_INPUTS = {
    # name: (path, requests.post kwargs, status, text the error message holds)
    "not an image": (JSON, {"json": {"data": b64(b"plain text, no pixels")}}, 400, "not an image"),
    "truncated png": (JSON, {"json": {"data": b64(PNG[: len(PNG) // 2])}}, 400, "truncated"),
    "empty body": (JSON, {"data": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
    "wrong content type": (JSON, {"data": b"{}", "headers": {"content-type": "text/plain"}}, 415,
                           "expected Content-Type: application/json"),
    "invalid json": (JSON, {"data": b"{\"data\": ", "headers": {"content-type": "application/json"}}, 400,
                     "not valid JSON"),
    "json not an object": (JSON, {"json": [1, 2]}, 400, "must be a JSON object"),
    "missing data": (JSON, {"json": {"sheet": {"width": 200, "height": 150}}}, 400, "missing 'data'"),
    "invalid base64": (JSON, {"json": {"data": "iVBOR$$w0KGgo"}}, 400, "not valid base64"),
    "decompression bomb": (JSON, {"json": {"data": b64(png_bomb())}}, 400, "decompression bomb"),
    "negative sheet": (JSON, {"json": {"data": b64(PNG), "sheet": {"width": -200, "height": 150}}}, 400,
                       "must be > 0"),
    "zero sheet": (JSON, {"json": {"data": b64(PNG), "sheet": {"width": 0, "height": 150}}}, 400, "must be > 0"),
    "string sheet": (JSON, {"json": {"data": b64(PNG), "sheet": {"width": "wide", "height": 150}}}, 400,
                     "expected a number"),
    "missing height": (JSON, {"json": {"data": b64(PNG), "sheet": {"width": 200}}}, 400, "missing field height"),
    "sheet out of range": (JSON, {"json": {"data": b64(PNG), "sheet": {"width": 600, "height": 400}}}, 400,
                           "outside 50..500 mm"),
    "sheet not an object": (JSON, {"json": {"data": b64(PNG), "sheet": "A4"}}, 400, "sheet"),
    "upload missing file": (UPLOAD, {"files": {"image": ("a.png", PNG)}}, 400, "file: missing"),
    "upload empty file": (UPLOAD, {"files": {"file": ("a.png", b"")}}, 400, "empty"),
    "upload not an image": (UPLOAD, {"files": {"file": ("a.png", b"GIF? no")}}, 400, "not an image"),
    "upload truncated": (UPLOAD, {"files": {"file": ("a.png", PNG[:-30])}}, 400, "truncated"),
    "upload bomb": (UPLOAD, {"files": {"file": ("a.png", png_bomb())}}, 400, "decompression bomb"),
    "upload bad sheet": (UPLOAD, {"files": {"file": ("a.png", PNG)}, "data": {"sheet_width": "wide",
                                                                              "sheet_height": "1"}},
                         400, "sheet_width: expected a number"),
    "upload half sheet": (UPLOAD, {"files": {"file": ("a.png", PNG)}, "data": {"sheet_width": "200"}}, 400,
                          "sheet_height: missing"),
    "upload as json": (UPLOAD, {"json": {"data": b64(PNG)}}, 415, "multipart/form-data"),
    "upload no boundary": (UPLOAD, {"data": b"--x\r\n", "headers": {"content-type": "multipart/form-data"}}, 400,
                           "boundary"),
    "chat no image": (CHAT, {"json": {"messages": [{"role": "user", "content": "draw me"}]}}, 400, "no image"),
    "chat remote url": (CHAT, {"json": chat_body("https://example.com/a.png")}, 400, "only data URLs"),
    "chat bad sheet text": (CHAT, {"json": chat_body(PNG_URL, "sheet: big")}, 400, "sheet: WIDTHxHEIGHT"),
    "chat sheet out of range": (CHAT, {"json": chat_body(PNG_URL, "sheet: 900x150")}, 400, "outside 50..500"),
    "chat stream": (CHAT, {"json": chat_body(PNG_URL, stream=True)}, 400, "streaming is not supported"),
    "chat truncated image": (CHAT, {"json": chat_body("data:image/png;base64," + b64(PNG[:100]))}, 400,
                             "truncated"),
    "unknown endpoint": ("/v2/nothing", {"json": {}}, 404, "no such endpoint"),
    "wrong method": (JSON, {"method": "GET"}, 405, "not allowed"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_a_clear_4xx_and_the_server_stays_up(server, name):
    path, kwargs, status, message = BAD_INPUTS[name]
    kwargs = dict(kwargs)
    method = kwargs.pop("method", "POST")
    response = requests.request(method, server["url"] + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"], error
    assert error["code"] == status and error["type"]
    assert alive(server["url"])


def test_body_over_the_limit_is_refused_early_and_while_streaming(server):
    url = server["url"] + JSON
    limit = BODY_LIMIT_MB * 1024 * 1024
    declared = requests.post(url, data=b"x" * (limit + 1), headers={"content-type": "application/json"}, timeout=30)
    assert declared.status_code == 413
    assert "over the limit" in declared.json()["error"]["message"]
    assert f"{limit + 1:,} bytes" in declared.json()["error"]["message"]  # known from Content-Length

    def chunks():  # no Content-Length: the server counts while reading
        for _ in range(BODY_LIMIT_MB + 2):
            yield b"y" * (1024 * 1024)
    streamed = requests.post(url, data=chunks(), headers={"content-type": "application/json"}, timeout=30)
    assert streamed.status_code == 413
    assert "over the limit" in streamed.json()["error"]["message"]
    bad_length = requests.post(url, data=b"{}", headers={"content-type": "application/json",
                                                         "content-length": "lots"}, timeout=30)
    assert bad_length.status_code == 400
    assert alive(server["url"])


def test_openai_client_gets_the_program(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key="unused", max_retries=0, timeout=60)
    completion = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": [
        {"type": "text", "text": "Read this drawing. sheet: 200x150"},
        {"type": "image_url", "image_url": {"url": PNG_URL}}]}])
    extra = completion.model_extra["cad2program"]
    assert extra["sheet"] == {"width": 200, "height": 150}
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == extra["program"]
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "tiny" and abs(completion.created - time.time()) < 120
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    # The same drawing through the JSON endpoint: the same program.
    direct = requests.post(server["url"] + JSON, json={"data": b64(PNG), "sheet": {"width": 200, "height": 150}},
                           timeout=60).json()
    assert direct["program"] == completion.choices[0].message.content
    assert [m.id for m in client.models.list()] == ["tiny"]


def test_openai_client_sees_errors_in_openai_format(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server["url"] + "/v1", api_key="unused", max_retries=0, timeout=60)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,bm90IGFuIGltYWdl"}}]}])
    assert caught.value.status_code == 400
    assert "not an image" in caught.value.message
    assert alive(server["url"])


def test_metrics_count_requests_and_batches_group_concurrent_requests(server):
    url = server["url"]
    before = requests.get(url + "/metrics", timeout=5).text
    body = {"data": b64(PNG), "sheet": {"width": 200, "height": 150}}
    with ThreadPoolExecutor(8) as pool:  # 8 at once, max wait 200 ms, max batch 4: batches of several
        responses = list(pool.map(lambda _: requests.post(url + JSON, json=body, timeout=60), range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert len({r.json()["program"] for r in responses}) == 1  # batched or not, the same answer
    requests.post(url + JSON, json={"data": "###"}, timeout=30)
    after = requests.get(url + "/metrics", timeout=5).text

    def delta(name: str, labels: str) -> float:
        return metric_values(after, name).get(labels, 0) - metric_values(before, name).get(labels, 0)
    assert delta("cad2program_requests_total", '{endpoint="/serve/cad_model",status="200"}') == 8
    assert delta("cad2program_requests_total", '{endpoint="/serve/cad_model",status="400"}') == 1
    batches = delta("cad2program_batch_size_count", "")
    single = delta("cad2program_batch_size_bucket", '{le="1.0"}')
    # Every drawing is decoded twice: as sent, and with what was found erased (the second look).
    assert delta("cad2program_batch_size_sum", "") == 16
    assert batches < 16 and batches - single >= 1, (batches, single)  # at least one batch of 2 or more
    assert delta("cad2program_request_latency_seconds_count", '{endpoint="/serve/cad_model"}') == 9
    assert "cad2program_queue_depth" in after


def test_root_without_a_web_page_points_to_the_docs(server):
    response = requests.get(server["url"] + "/", timeout=5)
    assert response.status_code == 200
    if response.headers["content-type"].startswith("application/json"):
        assert response.json()["docs"] == "/docs"
    else:  # the web page exists
        assert "<html" in response.text.lower()


# ----------------------------------------------------------------------------------------------
# The app around a fake model, in a uvicorn thread: warm-up, timeouts, bugs, batching off
# ----------------------------------------------------------------------------------------------


class FakeRecognizer:
    """Stands in for Recognizer: answers one circle per drawing after `delay_s`; can block warm-up or fail."""

    image_size = 16
    refine = False  # nothing to re-measure: the fake answers the same circle whatever the image

    def __init__(self, delay_s: float = 0.0):
        from types import SimpleNamespace

        self.config = SimpleNamespace(model=SimpleNamespace(num_image_tokens=5))
        self.delay_s = delay_s
        self.release_warm_up = threading.Event()
        self.release_warm_up.set()
        self.fail_on_width: float | None = None
        self.calls: list[int] = []

    def recognize_prepared(self, images, sheets):
        from cad2program.contract.program import Circle
        from cad2program.reading import Recognition

        self.release_warm_up.wait(30)
        time.sleep(self.delay_s)
        if any(s.width == self.fail_on_width for s in sheets):
            raise RuntimeError("a deliberate bug")
        self.calls.append(len(images))
        return [Recognition(s, [Circle(10, 10, 5)], [0.5], valid=True) for s in sheets]


@pytest.fixture
def fake_server():
    """Starts the app on a fake recognizer in a uvicorn thread; yields a function (recognizer, settings) -> url."""
    import uvicorn

    from cad2program.server.app import create_app

    started = []

    def start(recognizer, settings):
        port = free_port()
        config = uvicorn.Config(create_app(recognizer, settings), host="127.0.0.1", port=port, log_level="warning")
        instance = uvicorn.Server(config)
        thread = threading.Thread(target=instance.run, daemon=True)
        thread.start()
        started.append((instance, thread))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(url + "/healthz", timeout=1)
                return url
            except requests.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError("the in-thread server did not start")
    yield start
    for instance, thread in started:
        instance.should_exit = True
        thread.join(10)


def post_png(url: str, width: int = 200, timeout: float = 30) -> requests.Response:
    return requests.post(url + JSON, json={"data": b64(PNG), "sheet": {"width": width, "height": 150}},
                         timeout=timeout)


def test_not_ready_until_warmed_up(fake_server):
    from cad2program.server.settings import ServerSettings

    recognizer = FakeRecognizer()
    recognizer.release_warm_up.clear()
    url = fake_server(recognizer, ServerSettings(max_batch=2))
    assert alive(url)
    not_ready = requests.get(url + "/readyz", timeout=5)
    assert not_ready.status_code == 503 and not_ready.json()["status"] == "warming up"
    early = post_png(url)
    assert early.status_code == 503 and "warming up" in early.json()["error"]["message"]
    assert "Retry-After" in early.headers
    bad = requests.post(url + JSON, json={"data": "###"}, timeout=5)
    assert bad.status_code == 400  # bad input is refused as such even before the model is ready
    recognizer.release_warm_up.set()
    wait_ready(url, 20)
    assert recognizer.calls == [1, 2]  # warm-up ran every batch size up to the maximum
    assert post_png(url).status_code == 200


def test_a_slow_request_times_out_and_others_are_served(fake_server):
    from cad2program.server.settings import ServerSettings

    recognizer = FakeRecognizer()
    url = fake_server(recognizer, ServerSettings(max_batch=2, max_wait_ms=1, request_timeout_s=0.4))
    wait_ready(url, 20)
    recognizer.delay_s = 1.0  # the model is slow from now on (warm-up was not)
    started = time.monotonic()
    slow = post_png(url)
    assert slow.status_code == 504 and "longer than 0.4 s" in slow.json()["error"]["message"]
    assert time.monotonic() - started < 1.0  # answered at the timeout, not when the model finished
    assert alive(url)  # the event loop is free while the model thread works


def test_a_bug_is_a_json_500_and_the_server_keeps_serving(fake_server):
    from cad2program.server.settings import ServerSettings

    recognizer = FakeRecognizer()
    recognizer.fail_on_width = 123
    url = fake_server(recognizer, ServerSettings(max_batch=1))
    wait_ready(url, 20)
    broken = post_png(url, width=123)
    assert broken.status_code == 500
    assert "internal server error" in broken.json()["error"]["message"]
    assert post_png(url).status_code == 200
    assert metric_values(requests.get(url + "/metrics", timeout=5).text,
                         "cad2program_internal_errors_total")[""] == 1


def test_no_batching_runs_every_request_alone(fake_server):
    from cad2program.server.settings import ServerSettings

    recognizer = FakeRecognizer(delay_s=0.05)
    url = fake_server(recognizer, ServerSettings(max_batch=8, max_wait_ms=200, batching=False))
    wait_ready(url, 20)
    recognizer.calls.clear()
    with ThreadPoolExecutor(6) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: post_png(url), range(6))]
    assert statuses == [200] * 6 and recognizer.calls == [1] * 6


# ----------------------------------------------------------------------------------------------
# The batcher alone
# ----------------------------------------------------------------------------------------------


def test_batcher_bounds_batches_and_keeps_order():
    from cad2program.server.batcher import DynamicBatcher

    sizes = []

    def double(items):
        sizes.append(len(items))
        time.sleep(0.01)
        return [2 * x for x in items]

    async def main():
        batcher = DynamicBatcher(double, max_batch=3, max_wait_s=0.05)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i, timeout_s=5) for i in range(7)))
        await batcher.stop()
        return results
    assert asyncio.run(main()) == [2 * i for i in range(7)]
    assert max(sizes) == 3 and sum(sizes) == 7


def test_batcher_does_not_pad_a_batch_more_than_it_holds_back():
    from cad2program.server.batcher import DynamicBatcher

    sizes = []

    def run(items):
        sizes.append(len(items))
        return items

    async def main():
        batcher = DynamicBatcher(run, max_batch=32, max_wait_s=0.05, sizes=(1, 2, 4, 8, 16, 32))
        batcher.start()
        results = await asyncio.gather(*(batcher.submit(i, timeout_s=5) for i in range(17)))
        await batcher.stop()
        return results
    assert asyncio.run(main()) == list(range(17))
    assert sizes == [16, 1]  # not 17 padded to 32
    assert [DynamicBatcher(run, sizes=(1, 2, 4, 8)).batch_size_for(n) for n in (3, 5, 6, 7, 8)] == [3, 4, 6, 7, 8]


def test_batcher_waits_only_for_requests_on_their_way():
    from cad2program.server.batcher import DynamicBatcher

    sizes = []

    def run(items):
        sizes.append(len(items))
        return items

    async def main():
        batcher = DynamicBatcher(run, max_batch=8, max_wait_s=2.0)
        batcher.start()
        started = time.monotonic()
        assert await batcher.submit("alone", timeout_s=5) == "alone"
        alone_s = time.monotonic() - started

        async def prepared_then_submitted(item):
            with batcher.on_the_way():
                await asyncio.sleep(0.2)  # its image is being decoded
            return await batcher.submit(item, timeout_s=5)

        second = asyncio.create_task(prepared_then_submitted("second"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await batcher.submit("first", timeout_s=5) == "first"
        waited_s = time.monotonic() - started
        assert await second == "second"
        await batcher.stop()
        return alone_s, waited_s
    alone_s, waited_s = asyncio.run(main())
    assert alone_s < 1.0  # nobody was coming: no 2 s wait
    assert sizes == [1, 2] and 0.1 < waited_s < 1.0  # "first" waited for "second", not for the whole 2 s


def test_batcher_skips_requests_that_gave_up():
    from cad2program.server.batcher import DynamicBatcher

    seen = []

    def record(items):
        seen.extend(items)
        time.sleep(0.3)
        return items

    async def main():
        batcher = DynamicBatcher(record, max_batch=1, max_wait_s=0)
        batcher.start()
        first = asyncio.create_task(batcher.submit("first", timeout_s=5))
        await asyncio.sleep(0.05)  # "first" is running; "impatient" waits behind it and gives up
        with pytest.raises(asyncio.TimeoutError):
            await batcher.submit("impatient", timeout_s=0.1)
        assert await first == "first"
        assert await batcher.submit("last", timeout_s=5) == "last"
        await batcher.stop()
    asyncio.run(main())
    assert seen == ["first", "last"]


def test_serve_refuses_bad_flags_clearly(capsys):
    from cad2program.cli import main

    assert main(["serve", "--max-batch", "0", "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert "--max-batch must be within 1..64" in err and "--port" in err
