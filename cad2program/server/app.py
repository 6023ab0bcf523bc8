"""The HTTP recognition server: FastAPI app, dynamic batching, limits, metrics and error handling.

Request path: the body is read under a size limit (refused early from Content-Length, and again while
streaming); parsing, base64 and image decoding, and resizing to the model's input run in a thread pool
(never on the event loop); the prepared image joins the batch queue; the single model thread decodes a
whole batch at once. Every client mistake is a 4xx JSON error in OpenAI's format
`{"error": {"message", "type", "param", "code"}}`; a 500 means a bug and is logged with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cad2program.contract.dataset import ImageError, load_image
from cad2program.contract.program import ProgramError, Sheet, primitives_from_json
from cad2program.reading import Recognizer
from cad2program.server import openai_api
from cad2program.server.contract import (
    RequestError,
    build_response,
    decode_image_data,
    parse_request,
    parse_sheet,
)
from cad2program.server.engine import Engine
from cad2program.server.errors import ClientError, status_of
from cad2program.server.metrics import Metrics
from cad2program.server.settings import DEFAULT_BODY_TIMEOUT_S, ServerSettings

log = logging.getLogger("cad2program.server")
WEB_DIR = Path(__file__).resolve().parent / "web"
ENDPOINTS = ("/serve/cad_model", "/v1/recognize", "/v1/chat/completions", "/v1/models", "/healthz", "/readyz",
             "/metrics", "/docs", "/openapi.json", "/", "/v1/export/dxf")
MAX_EXPORT_PRIMITIVES = 1000  # a drawing holds 1..12; the cap keeps one request's DXF work to milliseconds
# The limits docs/reliability.md describes (and `serve --help` names).
MAX_JSON_DEPTH = 32  # a request nests 5 levels deep; json and repr() recurse, so depth is refused before parsing


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    """The client declared a body and did not send all of it within the body timeout."""


def error_body(message: str, status: int, param: str | None = None) -> dict:
    """OpenAI's error format, used by every endpoint so one client-side handler reads them all."""
    kind = {413: "invalid_request_error", 429: "rate_limit_error", 503: "server_busy", 504: "timeout"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error_response(message: str, status: int, param: str | None = None) -> JSONResponse:
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return JSONResponse(error_body(message, status, param), status_code=status, headers=headers)


# ----------------------------------------------------------------------------------------------
# Middleware: metrics and the body size limit (pure ASGI, so it sees every response, 413s included)
# ----------------------------------------------------------------------------------------------


class ObserveAndLimit:
    def __init__(self, app, metrics: Metrics, max_body_bytes: int, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S):
        self.app, self.metrics, self.max_body_bytes = app, metrics, max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else ("/static" if path.startswith("/static/") else "other")
        started, status = time.monotonic(), [500]

        async def observed_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            refusal = self._refuse_early(scope)
            if refusal is not None:
                await refusal(scope, receive, observed_send)
            else:
                await self.app(scope, self._limited(receive), observed_send)
        finally:
            self.metrics.requests.labels(endpoint, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.monotonic() - started)

    def _refuse_early(self, scope) -> Response | None:
        """A 413 from the declared Content-Length, before reading a byte of the body."""
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is None:
            return None
        try:
            length = int(declared)
        except ValueError:
            return error_response(f"Content-Length {declared[:20].decode('latin-1')!r} is not a number", 400)
        if length > self.max_body_bytes:
            return error_response(f"the request body ({length:,} bytes) is over the limit of "
                                  f"{self.max_body_bytes:,} bytes", 413)
        return None

    def _limited(self, receive):
        """`receive` that raises BodyTooLarge once more than the limit has streamed in (chunked uploads), and
        BodyTimeout when the whole body has not come within the body timeout of the first read (a client
        that declares 1000 bytes and sends 10 would otherwise hold its connection for ever)."""
        received, deadline, complete = 0, None, False

        async def limited_receive():
            nonlocal received, deadline, complete
            if complete:  # after the body only a disconnect can come: no deadline on waiting for it
                return await receive()
            if deadline is None:
                deadline = time.monotonic() + self.body_timeout_s
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyTimeout(f"the request body did not arrive within {self.body_timeout_s:g} s "
                                  f"({received:,} bytes came)") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    raise BodyTooLarge(f"the request body is over the limit of {self.max_body_bytes:,} bytes")
            else:
                complete = True
            return message
        return limited_receive


# ----------------------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------------------

_IMAGE_REQUEST_SCHEMA = {
    "type": "object", "required": ["data"],
    "properties": {
        "data": {"type": "string", "description": "the drawing, a base64-encoded PNG or JPEG"},
        "sheet": {"type": "object", "required": ["width", "height"], "description": "sheet size in mm, 1..500",
                  "properties": {"width": {"type": "number"}, "height": {"type": "number"}}},
    },
}
_UPLOAD_SCHEMA = {
    "type": "object", "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "the drawing, PNG or JPEG"},
        "sheet_width": {"type": "number", "description": "sheet width in mm (with sheet_height)"},
        "sheet_height": {"type": "number", "description": "sheet height in mm (with sheet_width)"},
    },
}
_EXPORT_SCHEMA = {
    "type": "object", "required": ["primitives", "sheet"],
    "example": {"primitives": [{"type": "rectangle", "x": 10, "y": 15, "width": 40, "height": 20,
                                "confidence": 0.97}], "sheet": {"width": 200, "height": 150}},
    "properties": {
        "primitives": {"type": "array", "items": {"type": "object"},
                       "description": "primitives as /v1/recognize returns them (a 'confidence' is ignored)"},
        "sheet": {"type": "object", "required": ["width", "height"], "description": "sheet size in mm",
                  "properties": {"width": {"type": "number"}, "height": {"type": "number"}}},
    },
}
_CHAT_SCHEMA = {
    "type": "object", "required": ["messages"],
    "example": {"model": "cad2program", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "sheet: 200x150"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo..."}}]}]},
}


def _body_doc(content_type: str, schema: dict) -> dict:
    return {"requestBody": {"required": True, "content": {content_type: {"schema": schema}}}}


def _require_content_type(request: Request, expected: str) -> None:
    actual = request.headers.get("content-type", "")
    if actual.split(";")[0].strip().lower() != expected:
        raise ClientError(f"expected Content-Type: {expected}, got {actual or 'none'!r}", status=415)


async def _json_body(request: Request) -> bytes:
    _require_content_type(request, "application/json")
    body = await request.body()
    if not body.strip():
        raise ClientError("the request body is empty (expected a JSON object)")
    return body


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b"", body).translate(None, delete=bytes(set(range(256)) - set(b"[]{}")))
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _loads(body: bytes) -> Any:
    """The JSON of a request body; ClientError (400) when it is not JSON or nests too deeply.

    The depth is checked before parsing: json.loads and every repr() of the result recurse, and a body
    of 5000 '[' would otherwise be a RecursionError (a 500) somewhere along the way."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise ClientError(f"the request body nests arrays and objects {depth} deep; the limit is {MAX_JSON_DEPTH}")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise ClientError(f"the request body is not valid JSON ({err})") from None
    except RecursionError:
        raise ClientError(f"the request body nests too deeply (the limit is {MAX_JSON_DEPTH})") from None


def _form_number(value: Any, field: str) -> float:
    try:
        return float(str(value).strip())
    except ValueError:
        raise ClientError(f"{field}: expected a number of mm, got {str(value)[:40]!r}", param=field) from None


def _form_sheet(width: Any, height: Any) -> Sheet | None:
    """The upload's optional sheet_width and sheet_height form fields (both or neither)."""
    if width is None and height is None:
        return None
    if width is None or height is None:
        missing = "sheet_height" if height is None else "sheet_width"
        raise ClientError(f"{missing}: missing (give both sheet_width and sheet_height in mm, or neither)",
                          param=missing)
    return parse_sheet({"width": _form_number(width, "sheet_width"),
                        "height": _form_number(height, "sheet_height")})


def parse_export_request(payload: Any) -> tuple[list, Sheet]:
    """`{"primitives": [...], "sheet": {...}}` (a recognition response as it came) -> typed primitives and sheet.

    Raises ClientError naming the field at fault."""
    if not isinstance(payload, dict):
        raise ClientError(f"expected a JSON object with 'primitives' and 'sheet', got {type(payload).__name__}")
    for field in ("primitives", "sheet"):
        if field not in payload:
            raise ClientError(f"{field}: missing", param=field)
    listed = payload["primitives"]
    if isinstance(listed, list) and len(listed) > MAX_EXPORT_PRIMITIVES:
        raise ClientError(f"primitives: {len(listed)} is over the limit of {MAX_EXPORT_PRIMITIVES}",
                          param="primitives")
    try:
        sheet = Sheet.from_json(payload["sheet"])
    except (ProgramError, TypeError, ValueError) as err:
        raise ClientError(str(err), param="sheet") from None
    # The page sends back what /v1/recognize answered: confidences ride along and mean nothing to a DXF.
    stripped = [{k: v for k, v in p.items() if k != "confidence"} if isinstance(p, dict) else p
                for p in listed] if isinstance(listed, list) else listed
    try:
        return primitives_from_json(stripped), sheet
    except (ProgramError, TypeError, ValueError) as err:
        raise ClientError(str(err), param="primitives") from None


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(RequestError)
    async def request_error(_request: Request, err: RequestError):
        return error_response(str(err), status_of(err), getattr(err, "param", None))

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(_request: Request, err: BodyTooLarge):
        return error_response(str(err), 413)

    @app.exception_handler(BodyTimeout)
    async def body_timeout(_request: Request, err: BodyTimeout):
        response = error_response(str(err), 408)
        response.headers["Connection"] = "close"  # the rest of the body may still come: do not read it as a request
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException):
        messages = {404: f"no such endpoint: {request.method} {request.url.path} (see /docs)",
                    405: f"{request.method} is not allowed on {request.url.path}"}
        return error_response(messages.get(err.status_code, str(err.detail)), err.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, err: RequestValidationError):
        where = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in err.errors())
        return error_response(where or "invalid request", 400)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception):  # a bug: say so, keep serving
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=err)
        metrics.internal_errors.inc()
        return error_response(f"internal server error ({type(err).__name__}); this is a bug, please report it",
                              500)


def _add_web_page(app: FastAPI) -> None:
    """The web page, when the package has one: cad2program/server/web/index.html at /, its files at /static."""
    index = WEB_DIR / "index.html"
    if index.is_file():
        from fastapi.staticfiles import StaticFiles

        static = WEB_DIR / "static" if (WEB_DIR / "static").is_dir() else WEB_DIR
        app.mount("/static", StaticFiles(directory=static), name="static")

        @app.get("/", include_in_schema=False)
        async def page():
            return FileResponse(index)
    else:
        @app.get("/", include_in_schema=False)
        async def root():
            return {"name": "cad2program", "docs": "/docs", "endpoints": list(ENDPOINTS[:4])}


def create_app(recognizer: Recognizer, settings: ServerSettings | None = None) -> FastAPI:
    """The server for one loaded model; warm-up starts with the app and /readyz says when it is done."""
    settings = settings or ServerSettings()
    metrics = Metrics()
    metrics.max_queue.set(settings.max_queue)
    engine = Engine(recognizer, settings, metrics)
    started = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        warm_up = asyncio.create_task(engine.start())
        yield
        warm_up.cancel()
        await engine.stop()

    app = FastAPI(title="cad2program", lifespan=lifespan,
                  description="Reads images of technical drawings into programs of geometric primitives. "
                              "Errors use OpenAI's format: {\"error\": {\"message\", \"type\", \"param\", "
                              "\"code\"}}.")
    app.state.engine, app.state.metrics, app.state.settings = engine, metrics, settings
    app.add_middleware(ObserveAndLimit, metrics=metrics, max_body_bytes=settings.max_body_bytes,
                       body_timeout_s=settings.body_timeout_s)
    _add_error_handlers(app, metrics)

    @app.post("/serve/cad_model", summary="Recognize a base64 image (JSON)",
              openapi_extra=_body_doc("application/json", _IMAGE_REQUEST_SCHEMA))
    async def serve_cad_model(request: Request):
        """`{"data": base64 PNG/JPEG, "sheet": {"width", "height"}}` -> `{"primitives", "program", "sheet"}`."""
        body = await _json_body(request)
        recognition = await engine.recognize(
            lambda: parse_request(_loads(body), max_pixels=settings.max_pixels,
                                  max_bytes=settings.max_body_bytes, **engine.decoding_limits()))
        return build_response(recognition)

    @app.post("/v1/recognize", summary="Recognize an uploaded image (multipart)",
              openapi_extra=_body_doc("multipart/form-data", _UPLOAD_SCHEMA))
    async def recognize_upload(request: Request):
        """Multipart upload: `file`, optional `sheet_width` and `sheet_height` (mm)."""
        _require_content_type(request, "multipart/form-data")
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ClientError("file: missing (upload the drawing as the multipart field 'file')",
                                  param="file")
            data = await upload.read()
            width, height = form.get("sheet_width"), form.get("sheet_height")

        def parse():
            sheet = _form_sheet(width, height)
            if not data:
                raise ClientError("file: the uploaded file is empty", param="file")
            try:
                return load_image(data, max_pixels=settings.max_pixels, **engine.decoding_limits()), sheet
            except ImageError as err:
                raise ClientError(f"file: not a usable image: {err.reason}", param="file") from None
        return build_response(await engine.recognize(parse))

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completion",
              openapi_extra=_body_doc("application/json", _CHAT_SCHEMA))
    async def chat_completions(request: Request):
        """The drawing as an `image_url` data URL in the last user message; `sheet: WxH` in a text part."""
        body = await _json_body(request)

        def parse():
            url, sheet, _model = openai_api.parse_chat_request(_loads(body))
            try:
                return decode_image_data(url, settings.max_pixels, settings.max_body_bytes,
                                         **engine.decoding_limits()), sheet
            except RequestError as err:  # the contract names its field 'data'; here it is the image URL
                message = str(err).replace("'data'", "the image_url's data", 1)
                raise ClientError(message, status_of(err), param="messages") from None
        recognition = await engine.recognize(parse)
        return openai_api.chat_completion(recognition, settings.model_name,
                                          recognizer.config.model.num_image_tokens)

    @app.post("/v1/export/dxf", summary="Primitives and sheet (JSON) -> a DXF file",
              openapi_extra=_body_doc("application/json", _EXPORT_SCHEMA),
              responses={200: {"content": {"application/dxf": {}}, "description": "the DXF file"}})
    async def export_dxf(request: Request):
        """The web page's DXF download: geometry, sheet border and dimensions, as `predict --format dxf` writes."""
        from cad2program.outputs import dxf_bytes

        body = await _json_body(request)

        def build() -> bytes:
            primitives, sheet = parse_export_request(_loads(body))
            try:
                return dxf_bytes(primitives, sheet)
            except (ValueError, OverflowError) as err:  # valid numbers, but far beyond what a drawing holds
                raise ClientError(f"primitives: cannot be written as DXF ({err})", param="primitives") from None
        data = await asyncio.get_running_loop().run_in_executor(engine.decode_pool, build)
        return Response(data, media_type="application/dxf",
                        headers={"Content-Disposition": 'attachment; filename="drawing.dxf"'})

    @app.get("/v1/models", summary="The served model (OpenAI-compatible)")
    async def models():
        return openai_api.model_list(settings.model_name, started)

    @app.get("/healthz", summary="Liveness: the process answers")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="Readiness: 200 once the model is loaded and warmed up, else 503")
    async def readyz():
        if engine.ready:
            return {"status": "ready", "model": settings.model_name, "max_batch": settings.effective_max_batch}
        return JSONResponse({"status": engine.warmup_error or "warming up"}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus_metrics():
        content, content_type = metrics.render()
        return Response(content, media_type=content_type)

    _add_web_page(app)
    return app
