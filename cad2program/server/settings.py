"""The recognition server's settings and their defaults, in a module of its own so that `serve --help`
reads the defaults without importing FastAPI or the model."""

from __future__ import annotations

import dataclasses

from cad2program.contract.dataset import DEFAULT_MAX_PIXELS

DEFAULT_MAX_QUEUE = 64
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_WORK_PIXELS = 6_000_000  # 3000 x 2000: an A4 sheet at 10 pixels a mm, more than re-measuring needs
DEFAULT_DECODE_PIXEL_BUDGET = 64_000_000  # one 49 Mpx decode (about 150-250 MB at its peak) and a few small ones


@dataclasses.dataclass
class ServerSettings:
    max_batch: int = 32
    max_wait_ms: float = 10.0
    batching: bool = True
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    request_timeout_s: float = 60.0  # decoding + queue + model, per request
    decode_workers: int = 4
    max_queue: int = DEFAULT_MAX_QUEUE  # recognition requests held at once; one more is a 503
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S  # to read a whole request body; then 408
    work_pixels: int = DEFAULT_WORK_PIXELS  # larger images are scaled down to this many as they are decoded
    decode_pixel_budget: int = DEFAULT_DECODE_PIXEL_BUDGET  # pixels being decoded at once, across requests
    model_name: str = "cad2program"

    @property
    def effective_max_batch(self) -> int:
        return self.max_batch if self.batching else 1
