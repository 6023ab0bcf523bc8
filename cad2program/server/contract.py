"""The serving request/response contract, shared by the REST server and the ClearML-Serving endpoint.

Request (a JSON object)::

    {"data": "<base64 of a PNG or JPEG file>", "sheet": {"width": 200, "height": 150}}

`sheet` (millimetres) is optional; without it the sheet is inferred from the image's aspect ratio
(longer side 297 mm, see `cad2program.recognizer.infer_sheet`). `data` may also be a data URL
(``data:image/png;base64,...``); line breaks inside the base64 text (as `base64` writes by default)
are allowed, any other character outside the base64 alphabet is refused.

Response::

    {"primitives": [{"type": "circle", "x": 30, "y": 5, "radius": 5, "confidence": 0.97}, ...],
     "program": "circle(x=30, y=5, radius=5)", "sheet": {"width": 200, "height": 150},
     "valid": true, "problems": []}

Every bad request raises `RequestError` (a ValueError) whose message says which field is wrong and why.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

import numpy as np

from cad2program.contract.dataset import DEFAULT_MAX_PIXELS, ImageError, load_image
from cad2program.contract.program import ProgramError, Sheet

# The encoded file, not the pixels (those are limited by max_pixels): a 20 MiB PNG/JPEG is far beyond
# any drawing scan, and refusing before decoding keeps one request from holding that much memory twice.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
REQUEST_KEYS = ("data", "sheet")
REQUEST_FORM = '{"data": "<base64 PNG or JPEG>", "sheet": {"width": <mm>, "height": <mm>}} (sheet optional)'
_WHITESPACE = re.compile(rb"[ \t\r\n]+")


class RequestError(ValueError):
    """A request that cannot be served; the message says what is wrong (the client's fault: HTTP 4xx)."""


def parse_request(payload: Any, max_pixels: int = DEFAULT_MAX_PIXELS,
                  max_bytes: int = MAX_IMAGE_BYTES, **decoding) -> tuple[np.ndarray, Sheet | None]:
    """A decoded JSON request -> (grey uint8 image (H, W), sheet or None); RequestError says why not."""
    if not isinstance(payload, dict):
        raise RequestError(f"the request must be a JSON object {REQUEST_FORM}, got {_json_type(payload)}")
    unknown = sorted(str(key) for key in payload if key not in REQUEST_KEYS)
    if unknown:
        raise RequestError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                           f"(a request holds only {' and '.join(map(repr, REQUEST_KEYS))})")
    image = decode_image_data(payload.get("data"), max_pixels, max_bytes, **decoding)
    sheet = parse_sheet(payload.get("sheet"))
    return image, sheet


def decode_image_data(data: Any, max_pixels: int = DEFAULT_MAX_PIXELS,
                      max_bytes: int = MAX_IMAGE_BYTES, **decoding) -> np.ndarray:
    """The request's `data` field (base64 text) -> grey uint8 image; RequestError says why not.

    `decoding`: `load_image`'s work_pixels, budget and budget_timeout_s (the server's limits)."""
    if data is None:
        raise RequestError(f"missing 'data': the request must be {REQUEST_FORM}")
    if not isinstance(data, str):
        raise RequestError(f"'data' must be a string holding a base64-encoded PNG or JPEG file, "
                           f"got {_json_type(data)}")
    encoded = _without_data_url(data.strip())
    if not encoded:
        raise RequestError("'data' is empty: it must hold a base64-encoded PNG or JPEG file")
    try:
        ascii_text = encoded.encode("ascii")
    except UnicodeEncodeError as err:
        raise RequestError(f"'data' is not valid base64: non-ASCII character {encoded[err.start]!r} "
                           f"at position {err.start}") from None
    ascii_text = _WHITESPACE.sub(b"", ascii_text)
    # base64 grows data by 4/3: refuse an oversized image before decoding it
    if len(ascii_text) * 3 // 4 > max_bytes:
        raise RequestError(f"'data' is too large: about {len(ascii_text) * 3 // 4:,} bytes once decoded, "
                           f"the limit is {max_bytes:,} bytes")
    try:
        # validate=True: a character outside the alphabet is an error, not silently dropped
        raw = base64.b64decode(ascii_text, validate=True)
    except binascii.Error as err:
        raise RequestError(f"'data' is not valid base64 ({_base64_reason(encoded, err)})") from None
    try:
        return load_image(raw, max_pixels=max_pixels, **decoding)
    except ImageError as err:
        raise RequestError(f"'data' does not hold a usable image: {err.reason}") from None


def _without_data_url(text: str) -> str:
    """The base64 text of a data URL (`data:image/png;base64,...`; the scheme in any case), or `text` as it is.

    A data URL must say it holds an image (image/*) encoded in base64: `data:text/html;base64,<png>`
    is refused rather than read."""
    if text[:5].lower() != "data:":
        return text
    comma = text.find(",", 0, 256)
    if comma < 0:
        raise RequestError("'data' is a data URL without the ',' that ends its header (data:image/png;base64,...)")
    mime, *parameters = text[5:comma].split(";")
    mime = mime.strip().lower()
    if not mime.startswith("image/"):
        raise RequestError(f"'data' is a data URL of type {mime or '(none)'!r}, not an image; send "
                           f"data:image/png;base64,... or data:image/jpeg;base64,...")
    if "base64" not in (p.strip().lower() for p in parameters):
        raise RequestError("'data' is a data URL that is not base64-encoded; send data:image/png;base64,...")
    return text[comma + 1:]


def parse_sheet(sheet: Any) -> Sheet | None:
    """The request's optional `sheet` field -> Sheet (within the contract's scope) or None."""
    if sheet is None:
        return None
    try:
        parsed = Sheet.from_json(sheet)
    except ProgramError as err:
        raise RequestError(f"bad 'sheet' ({err}); expected {{\"width\": <mm>, \"height\": <mm>}}") from None
    problems = parsed.in_scope_problems()
    if problems:
        # the model is told the sheet size in whole mm up to 500: outside the scope its answer means nothing
        raise RequestError(f"bad 'sheet': {'; '.join(problems)} (the contract's scope)")
    return parsed


def build_response(recognition) -> dict:
    """A `Recognition` -> the response object (see the module docstring)."""
    as_json = recognition.to_json()
    return {"primitives": as_json["primitives"], "program": as_json["program"], "sheet": as_json["sheet"],
            "valid": bool(recognition.valid), "problems": list(recognition.problems)}


def _json_type(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} raw bytes (send the image base64-encoded in a JSON body)"
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _base64_reason(text: str, err: binascii.Error) -> str:
    bad = re.search(r"[^A-Za-z0-9+/= \t\r\n]", text)
    if bad:
        return f"character {bad.group()!r} at position {bad.start()} is outside the base64 alphabet"
    length = len(re.sub(r"[ \t\r\n]", "", text))
    if length % 4:
        return f"{length} characters is not a multiple of 4: the text is cut off or its '=' padding is missing"
    return str(err)
