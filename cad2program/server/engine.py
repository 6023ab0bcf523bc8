"""The model side of the server: a Recognizer behind a DynamicBatcher, the pool that decodes images, the
warm-up, and where each of the recognizer's stages runs for a request."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from typing import Callable

import numpy as np

from cad2program.contract.dataset import PixelBudget
from cad2program.contract.program import Sheet
from cad2program.reading import (
    BATCH_BUCKETS,
    Drawing,
    Recognizer,
    run_stages_async,
    stages_for,
)
from cad2program.refine import import_deferred
from cad2program.server.batcher import DynamicBatcher, QueueFullError
from cad2program.server.errors import ClientError
from cad2program.server.metrics import Metrics
from cad2program.server.settings import ServerSettings

log = logging.getLogger("cad2program.server")


class Engine:
    """A Recognizer behind a DynamicBatcher, plus the thread pool that decodes images."""

    def __init__(self, recognizer: Recognizer, settings: ServerSettings, metrics: Metrics):
        self.recognizer, self.settings, self.metrics = recognizer, settings, metrics
        self.decode_pool = concurrent.futures.ThreadPoolExecutor(settings.decode_workers,
                                                                 thread_name_prefix="decode")
        self.batcher = DynamicBatcher(self.run_batch, max_batch=settings.effective_max_batch,
                                      max_wait_s=settings.max_wait_ms / 1000 if settings.batching else 0.0,
                                      max_queue=settings.max_queue, on_batch=metrics.observe_batch,
                                      on_queue_depth=metrics.queue_depth.set, sizes=BATCH_BUCKETS)
        self.ready = False
        self.warmup_error: str | None = None
        self.in_flight = 0  # recognition requests held now (decoding, queued, being read): at most max_queue
        self.pixel_budget = PixelBudget(settings.decode_pixel_budget)

    def decoding_limits(self) -> dict:
        """`load_image`'s keyword arguments for a request's image: the work size and the decode budget."""
        return {"work_pixels": self.settings.work_pixels, "budget": self.pixel_budget,
                "budget_timeout_s": self.settings.request_timeout_s}

    def run_batch(self, items: list[tuple[np.ndarray, Sheet]]) -> list:
        """Model-thread side: one compiled call for the whole batch of (prepared image, sheet) items."""
        return self.recognizer.recognize_prepared(np.stack([a for a, _ in items]), [s for _, s in items])

    def warm_up_sizes(self) -> list[int]:
        """Every padded batch size a batch can reach: each compiles once, here rather than on a request."""
        top = self.settings.effective_max_batch
        return [b for b in BATCH_BUCKETS if b < top] + [next((b for b in BATCH_BUCKETS if b >= top), top)]

    def warm_up(self) -> None:
        size = self.recognizer.image_size
        for n in self.warm_up_sizes():
            started = time.monotonic()
            blank = np.zeros((n, size, size, 1), np.float32)
            self.recognizer.recognize_prepared(blank, [Sheet(297, 210)] * n)
            log.info("warm-up: batch size %d ready in %.1f s", n, time.monotonic() - started)
        if self.recognizer.refine:
            started = time.monotonic()
            import_deferred()
            shapes = self.recognizer.warm_up_rereading()
            log.info("warm-up: re-reading sizes (%d shapes) ready in %.1f s", shapes, time.monotonic() - started)
        if self.recognizer.refine and self.recognizer.read_text:
            started = time.monotonic()
            found = self.recognizer.written_on(np.full((64, 64), 255, np.uint8)) is not None  # loads the OCR's models
            log.info("warm-up: OCR %s in %.1f s", "ready" if found else "not installed (sizes read without it)",
                     time.monotonic() - started)

    async def start(self) -> None:
        self.batcher.start()
        try:
            await self.batcher.run_in_model_thread(self.warm_up)
        except Exception as err:  # the server stays up and says why it is not ready
            log.exception("warm-up failed")
            self.warmup_error = f"warm-up failed: {err}"
            return
        self.ready = True
        self.metrics.ready.set(1)
        log.info("ready: model %s, max batch %d, max wait %g ms", self.settings.model_name,
                 self.settings.effective_max_batch, self.settings.max_wait_ms)

    async def stop(self) -> None:
        await self.batcher.stop()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)

    async def run_pipeline(self, drawing: Drawing) -> None:
        """The recognizer's stages for one drawing (`reading.pipeline`), each where it belongs here: the
        decode pool does the work that needs no model (reading the numbers, measuring on the ink,
        erasing), every reading goes through the batcher like any request, and the passes over
        written tokens (re-reading sizes, typing segments, scoring candidates) run on the model
        thread between batches. The same stages as `predict` runs, so both answer alike."""
        loop = asyncio.get_running_loop()

        async def on_pool(function, *args):
            return await loop.run_in_executor(self.decode_pool, function, *args)

        async def decode(prepared: np.ndarray, sheet: Sheet):
            return await self.batcher.submit((prepared, sheet))

        await run_stages_async(self.recognizer, drawing, stages_for(self.recognizer), on_pool,
                               self.batcher.run_in_model_thread, decode)

    async def recognize(self, parse: Callable[[], tuple[np.ndarray, Sheet | None]]):
        """Runs `parse` (decoding) in the pool, then queues the result; the timeout covers both.

        Raises ClientError: 503 while warming up or when the queue is full, 504 after the timeout."""
        if self.in_flight >= self.settings.max_queue:
            # Back-pressure: answered at once, rather than held behind work that will outlast the client.
            raise ClientError(f"the server is busy: {self.in_flight} requests are being served, the most it "
                              f"holds (--max-queue {self.settings.max_queue}); retry shortly", status=503)
        self.in_flight += 1
        self.metrics.in_flight.set(self.in_flight)
        try:
            return await self._recognize(parse)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)

    async def _recognize(self, parse: Callable[[], tuple[np.ndarray, Sheet | None]]):
        deadline = time.monotonic() + self.settings.request_timeout_s
        loop = asyncio.get_running_loop()

        def decode_and_prepare():
            try:
                image, sheet = parse()
            except TimeoutError as err:  # the pixel budget stayed full
                raise ClientError(f"the server is busy decoding other large images ({err}); retry shortly",
                                  status=503) from None
            return Drawing.of(image, sheet, self.recognizer.image_size)

        try:
            with self.batcher.on_the_way():
                drawing = await asyncio.wait_for(loop.run_in_executor(self.decode_pool, decode_and_prepare),
                                                 self.settings.request_timeout_s)
            if not self.ready:  # after decoding, so bad input is refused as such even during warm-up
                raise ClientError(self.warmup_error or "the model is still warming up; retry in a few seconds",
                                  status=503)
            await asyncio.wait_for(self.run_pipeline(drawing), max(0.0, deadline - time.monotonic()))
            return drawing.result
        except asyncio.TimeoutError:
            raise ClientError(f"the request took longer than {self.settings.request_timeout_s:g} s "
                               f"(decoding, queue and model); retry, or start the server with a longer "
                               f"--timeout", status=504) from None
        except QueueFullError as err:
            raise ClientError(f"the server is busy ({err}); retry shortly", status=503) from None
