"""The OpenAI-compatible chat completions contract: an image in, the program as the assistant's reply.

A request is an ordinary chat completion whose last user message holds the drawing as an `image_url`
content part with a data URL (`data:image/png;base64,...`). A text part may give the sheet size as
`sheet: 200x150` (mm, width x height); without it the sheet is inferred from the image's shape. The
sheet may also be given as a top-level `"sheet": {"width": 200, "height": 150}` (the OpenAI client's
`extra_body`). Remote image URLs are refused: the server never fetches anything.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from cad2program.contract import tokenizer
from cad2program.contract.program import Sheet
from cad2program.server.errors import ClientError
from cad2program.server.contract import parse_sheet

_SHEET_MENTION = re.compile(r"\bsheet\s*[:=]", re.IGNORECASE)
_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SHEET_TEXT = re.compile(rf"\bsheet\s*[:=]\s*(?P<w>{_NUMBER})\s*(?:mm)?\s*[x×*]\s*(?P<h>{_NUMBER})\s*(?:mm)?",
                         re.IGNORECASE)


def sheet_from_text(text: str) -> Sheet | None:
    """`... sheet: 200x150 ...` -> Sheet(200, 150); text without `sheet:` -> None; a malformed one -> error."""
    if not _SHEET_MENTION.search(text):
        return None
    match = _SHEET_TEXT.search(text)
    if not match:
        raise ClientError(f"messages: cannot read the sheet size in {text.strip()[:80]!r}; "
                           f"write it as 'sheet: WIDTHxHEIGHT' in mm, e.g. 'sheet: 200x150'", param="messages")
    return parse_sheet({"width": float(match["w"]), "height": float(match["h"])})


def _image_url(part: dict, where: str) -> str:
    image_url = part.get("image_url")
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise ClientError(f"{where}.image_url: expected {{\"url\": \"data:image/png;base64,...\"}}",
                           param="messages")
    if url[:5].lower() != "data:":  # a URL's scheme is case-insensitive (RFC 3986)
        raise ClientError(f"{where}.image_url: only data URLs (data:image/png;base64,...) are accepted; "
                           f"this server does not fetch remote images", param="messages")
    return url


def parse_chat_request(payload: Any) -> tuple[str, Sheet | None, str | None]:
    """A chat completion request -> (image data URL, sheet or None, requested model name)."""
    if not isinstance(payload, dict):
        raise ClientError("the request body must be a JSON object (a chat completion request)")
    if payload.get("stream"):
        raise ClientError("stream: streaming is not supported; send stream=false", param="stream")
    if payload.get("n") not in (None, 1):
        raise ClientError("n: only one choice per request is supported", param="n")
    for field in ("max_tokens", "max_completion_tokens"):
        # Accepted for compatibility; the program's length is the model's own limit, so any count >= 1 reads the same.
        value = payload.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            shown = repr(value) if isinstance(value, (int, float)) else f"a JSON {type(value).__name__}"
            raise ClientError(f"{field}: expected a whole number >= 1, got {shown[:40]}", param=field)
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ClientError("messages: expected a non-empty list of messages", param="messages")
    user_turns = [(i, m) for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    if not user_turns:
        raise ClientError("messages: no user message (the drawing goes in a user message)", param="messages")
    index, message = user_turns[-1]
    content = message.get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise ClientError(f"messages[{index}].content: expected a string or a list of content parts",
                           param="messages")
    urls, sheet = [], None
    for j, part in enumerate(parts):
        where = f"messages[{index}].content[{j}]"
        if not isinstance(part, dict):
            raise ClientError(f"{where}: expected a content part object", param="messages")
        if part.get("type") == "image_url":
            urls.append(_image_url(part, where))
        elif part.get("type") == "text" and isinstance(part.get("text"), str):
            sheet = sheet_from_text(part["text"]) or sheet
    if not urls:
        raise ClientError(f"messages[{index}]: no image; send the drawing as an image_url content part "
                           f"with a data URL (data:image/png;base64,...)", param="messages")
    if len(urls) > 1:
        raise ClientError(f"messages[{index}]: {len(urls)} images; send one drawing per request",
                           param="messages")
    if "sheet" in payload:
        sheet = parse_sheet(payload["sheet"])
    model = payload.get("model")
    return urls[0], sheet, model if isinstance(model, str) else None


def chat_completion(recognition, model_name: str, image_tokens: int) -> dict:
    """The OpenAI chat.completion object for one recognition (plus the primitives, as an extra field)."""
    completion_tokens = len(tokenizer.encode_program(recognition.sheet, recognition.primitives))
    prompt_tokens = image_tokens + tokenizer.PROMPT_LENGTH
    cut_off = any("length limit" in problem for problem in recognition.problems)
    finish_reason = "length" if cut_off else "stop"
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_name,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": recognition.program}, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "cad2program": recognition.to_json(),  # the same primitives as JSON, with confidences
    }


def model_list(model_name: str, created: int) -> dict:
    return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                        "owned_by": "cad2program"}]}
