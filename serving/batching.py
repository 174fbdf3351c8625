"""Adaptive request batching: concurrent calls are coalesced into one call of a blocking batch function.

Each :meth:`AdaptiveBatcher.submit` queues a list of items and waits for its own results. One collector
task takes the oldest waiting call and adds later ones until the batch holds ``max_batch_size`` items or
``max_wait_ms`` has passed since the oldest call arrived, then runs the batch function on a dedicated
worker thread, so the event loop keeps serving other requests meanwhile. Only one batch runs at a time;
calls that arrive while it runs wait and form the next batch, so batches grow with the load by
themselves: at low load a call waits at most ``max_wait_ms``, under load the batch is full at once.
A call is never split across batches: one with more than ``max_batch_size`` items runs alone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Call(Generic[Item, Result]):
    items: Sequence[Item]
    future: asyncio.Future[list[Result]]
    arrived_at: float = field(default_factory=time.monotonic)


class AdaptiveBatcher(Generic[Item, Result]):
    """Coalesces concurrent :meth:`submit` calls into batches for ``run_batch`` (blocking, one result per item).

    ``run_batch`` runs on one worker thread owned by the batcher (so thread-local settings such as torch's
    stay put); an exception it raises is raised to every caller of that batch.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], Sequence[Result]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        thread_name: str = "batch-worker",
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be 0 or more, got {max_wait_ms}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._waiting: deque[_Call[Item, Result]] = deque()
        self._waiting_items = 0
        self._arrived: asyncio.Event | None = None
        self._collector: asyncio.Task | None = None

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """The results of ``run_batch`` for ``items``, in order, computed in a batch with other calls."""
        if not items:
            return []
        self._ensure_collector()
        call: _Call[Item, Result] = _Call(items, asyncio.get_running_loop().create_future())
        self._waiting.append(call)
        self._waiting_items += len(items)
        self._arrived.set()
        return await call.future

    def close(self) -> None:
        """Stop collecting; calls still waiting are cancelled. A batch already running finishes."""
        if self._collector is not None:
            self._collector.cancel()
            self._collector = None
        while self._waiting:
            self._waiting.popleft().future.cancel()
        self._waiting_items = 0
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _ensure_collector(self) -> None:
        # Created on first use, inside the serving event loop (the model is built before the loop starts).
        if self._collector is None or self._collector.done():
            self._arrived = asyncio.Event()
            self._collector = asyncio.get_running_loop().create_task(self._collect_forever())

    async def _collect_forever(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._run(batch)

    async def _next_batch(self) -> list[_Call[Item, Result]]:
        while not self._waiting:
            self._arrived.clear()
            await self._arrived.wait()
        deadline = self._waiting[0].arrived_at + self.max_wait_s
        while self._waiting_items < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break
        batch: list[_Call[Item, Result]] = []
        size = 0
        while self._waiting and (not batch or size + len(self._waiting[0].items) <= self.max_batch_size):
            call = self._waiting.popleft()
            self._waiting_items -= len(call.items)
            if not call.future.done():  # a caller that went away (cancelled) needs no inference
                batch.append(call)
                size += len(call.items)
        return batch

    async def _run(self, batch: list[_Call[Item, Result]]) -> None:
        items = [item for call in batch for item in call.items]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        except asyncio.CancelledError:  # closed while the batch ran: its callers must not wait forever
            for call in batch:
                call.future.cancel()
            raise
        except Exception as error:  # every caller of the batch gets the failure; the collector goes on
            for call in batch:
                if not call.future.done():
                    call.future.set_exception(error)
            return
        start = 0
        for call in batch:
            if not call.future.done():
                call.future.set_result(list(results[start : start + len(call.items)]))
            start += len(call.items)
