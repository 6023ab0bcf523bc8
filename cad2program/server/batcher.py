"""Dynamic batching: requests arriving close together are decoded by the model in one call.

Requests wait in an asyncio queue; one collector task takes the oldest, then keeps taking more until
the batch holds `max_batch` requests or the oldest one has waited `max_wait_s`. It waits only for
requests known to be coming (announced with `on_the_way` while their image is decoded): a lone
request runs at once instead of paying the max wait for company that is not on its way. The batch
then runs in the single model thread (the model is not re-entrant, and one call on a batch of B
costs far less than B calls). While it runs, new requests queue up and form the next batch. A request whose client
gave up (timeout, disconnect) before its batch started is skipped.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import time
from typing import Any, Callable, Sequence

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """More requests are waiting than the server accepts; the client should retry later."""


@dataclasses.dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    enqueued: float


class DynamicBatcher:
    """Groups `submit`ted items into calls of `run_batch(items) -> results` (same order, same length)."""

    def __init__(self, run_batch: Callable[[Sequence[Any]], Sequence[Any]], max_batch: int = 32,
                 max_wait_s: float = 0.01, max_queue: int = 1024,
                 on_batch: Callable[[int, float], None] | None = None,
                 on_queue_depth: Callable[[int], None] | None = None, sizes: Sequence[int] = ()):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.run_batch, self.max_batch, self.max_wait_s, self.max_queue = run_batch, max_batch, max_wait_s, max_queue
        self.sizes = tuple(sorted(sizes))  # the sizes the model pads batches to (empty: no padding)
        self.on_batch = on_batch or (lambda size, seconds: None)
        self.on_queue_depth = on_queue_depth or (lambda depth: None)
        self._pending: collections.deque[_Pending] = collections.deque()
        self._on_the_way = 0  # requests being prepared for a `submit` (counted on the event loop)
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        # One thread: the model runs one batch at a time, and the event loop stays free meanwhile.
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")

    def start(self) -> None:
        """Starts the collector on the running event loop."""
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._collect_forever(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def depth(self) -> int:
        """Requests waiting for a batch (not counting the batch the model is running)."""
        return len(self._pending)

    async def run_in_model_thread(self, fn: Callable[..., Any], *args) -> Any:
        """Runs fn on the model thread (warm-up uses this, so it never overlaps a batch)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @contextlib.contextmanager
    def on_the_way(self):
        """Around the preparation of a request that will be submitted: a batch may wait for it."""
        self._on_the_way += 1
        try:
            yield
        finally:
            self._on_the_way -= 1

    async def submit(self, item: Any, timeout_s: float | None = None) -> Any:
        """Queues one item and waits for its result; asyncio.TimeoutError after timeout_s."""
        if self._wakeup is None:
            raise RuntimeError("the batcher is not started")
        if len(self._pending) >= self.max_queue:
            raise QueueFullError(f"{len(self._pending)} requests are already waiting")
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(item, future, time.monotonic()))
        self.on_queue_depth(len(self._pending))
        self._wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        finally:
            if not future.done():
                future.cancel()  # the collector skips it if its batch has not started yet

    async def _collect_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run(batch)

    async def _wait_for_arrival(self, timeout_s: float | None) -> bool:
        """Waits until a request arrives (True) or timeout_s passes (False)."""
        assert self._wakeup is not None
        self._wakeup.clear()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    async def _next_batch(self) -> list[_Pending]:
        while not self._pending:
            await self._wait_for_arrival(None)
        deadline = self._pending[0].enqueued + self.max_wait_s  # measured from the oldest request's arrival
        while len(self._pending) < self.max_batch and self._on_the_way > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await self._wait_for_arrival(remaining):
                break
        batch: list[_Pending] = []
        while self._pending and len(batch) < self.max_batch:
            pending = self._pending.popleft()
            if not pending.future.done():  # skip requests whose client gave up
                batch.append(pending)
        keep = self.batch_size_for(len(batch))
        self._pending.extendleft(reversed(batch[keep:]))  # first in line for the next batch
        self.on_queue_depth(len(self._pending))
        return batch[:keep]

    def batch_size_for(self, available: int) -> int:
        """How many of `available` requests to run now, given that a batch is padded up to a size in `sizes`.

        When padding would cost more rows than it saves (17 waiting, padded to 32), the batch is cut
        down to the size below (16) and the rest go first in the next batch: the model's time per
        padded row is the same as per real one."""
        if not self.sizes or available in self.sizes:
            return available
        below = max((s for s in self.sizes if s < available), default=available)
        above = min((s for s in self.sizes if s > available), default=available)
        return below if above - available > available - below else available

    async def _run(self, batch: list[_Pending]) -> None:
        started = time.monotonic()
        try:
            results = await self.run_in_model_thread(self.run_batch, [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except Exception as err:  # a bug in the model call: every request of the batch gets the error
            log.exception("a batch of %d failed", len(batch))
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        finally:
            self.on_batch(len(batch), time.monotonic() - started)
        for p, result in zip(batch, results):
            if not p.future.done():
                p.future.set_result(result)
