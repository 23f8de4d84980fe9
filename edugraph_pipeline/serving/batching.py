"""Micro-batching: concurrent requests are queued and one worker drains them onto the one loaded model.

The worker takes the first waiting request, then keeps collecting for at most `window_s` (or until
`max_batch_images` images are gathered), and runs the blocking model call in a thread so that the event loop
keeps answering `/healthz`, `/metrics` and bad requests meanwhile. Only one batch runs at a time: the model is
not shared between threads. A request whose caller gave up (timeout, disconnect) before its batch started is
dropped, not computed. A request with more images than `max_batch_images` is a batch of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BatchSettings:
    max_batch_images: int = 8  # images per model call (the transformers backend's generation batch)
    window_s: float = 0.01  # how long the first request of a batch waits for company


@dataclass
class _Pending:
    images: Sequence[Any]
    future: asyncio.Future


class BatchQueue:
    def __init__(
        self,
        run_batch: Callable[[list[Any]], list[Any]],
        *,
        max_batch_images: int = 8,
        window_s: float = 0.01,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch_images < 1:
            raise ValueError(f"max_batch_images must be at least 1, got {max_batch_images}")
        if window_s < 0:
            raise ValueError(f"window_s must not be negative, got {window_s}")
        self.run_batch = run_batch  # images in, one result per image out, in order
        self.max_batch_images = max_batch_images
        self.window_s = window_s
        self.on_batch = on_batch  # told the image count of each batch that runs
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._held: _Pending | None = None  # taken from the queue but did not fit the previous batch
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._drain(), name="edugraph-batch-worker")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    @property
    def waiting(self) -> int:
        return self._queue.qsize() + (self._held is not None)

    async def submit(self, images: Sequence[Any]) -> list[Any]:
        """One result per image, in order, once the batch holding them has run."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(list(images), future))
        return await future

    async def _next(self, timeout: float | None) -> _Pending | None:
        if self._held is not None:
            pending, self._held = self._held, None
            return pending
        if timeout is None:
            return await self._queue.get()
        try:
            return await asyncio.wait_for(self._queue.get(), timeout) if timeout > 0 else self._queue.get_nowait()
        except (asyncio.TimeoutError, asyncio.QueueEmpty):
            return None

    async def _collect(self) -> list[_Pending]:
        loop = asyncio.get_running_loop()
        first = await self._next(None)
        batch, count = [first], len(first.images)
        deadline = loop.time() + self.window_s
        while count < self.max_batch_images:
            pending = await self._next(deadline - loop.time())
            if pending is None:
                break
            if count + len(pending.images) > self.max_batch_images:
                self._held = pending
                break
            batch.append(pending)
            count += len(pending.images)
        return [p for p in batch if not p.future.done()]

    async def _drain(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                continue
            images = [image for pending in batch for image in pending.images]
            if self.on_batch is not None:
                self.on_batch(len(images))
            try:
                results = await asyncio.to_thread(self.run_batch, images)
            except Exception as error:  # noqa: BLE001 - handed to every waiting request, the worker carries on
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            start = 0
            for pending in batch:
                part = results[start : start + len(pending.images)]
                start += len(pending.images)
                if not pending.future.done():
                    pending.future.set_result(part)
