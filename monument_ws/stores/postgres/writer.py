"""The write queue: publications waiting for the database, written in batches.

:meth:`Writer.submit` queues one publication and returns a future the writer resolves once the
batch holding it committed (with its offset and epoch) or failed (Unavailable). One task writes
one batch at a time: whatever queued while a batch was in flight -- up to ``batch_size`` -- goes
into the next one, so a burst of concurrent publishes costs a few transactions, not one round
trip each, and a single publish is written at once.

**Bounded.** At most ``queue_size`` publications wait; beyond it :meth:`submit` raises
Unavailable at once, so a slow database costs callers an error, not this process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ...brokers.base import Idempotency
from ...protocol.errors import Unavailable

log = logging.getLogger("monument_ws.store")


@dataclass(slots=True)
class Pending:
    """One publication waiting to be written: ``event`` and ``data`` are their JSON texts."""

    channel: str
    event: str
    data: str
    exclude: str | None
    #: the publish's idempotency key and how long it counts (None: no key)
    idempotency: Idempotency | None = None
    done: asyncio.Future[tuple[int, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


#: Writes one batch in one transaction and resolves each publication's future.
WriteBatch = Callable[[list[Pending]], Awaitable[None]]


class Writer:
    """The queue and the task that empties it."""

    def __init__(self, write: WriteBatch, *, queue_size: int, batch_size: int = 500) -> None:
        self._write = write
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._waiting: deque[Pending] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: batches written (committed or not): tests and the benchmark read it
        self.batches = 0

    def __len__(self) -> int:
        """Publications waiting (not counting the batch in flight)."""
        return len(self._waiting)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop writing; everything still waiting fails with Unavailable."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._waiting:
            _fail(self._waiting.popleft(), Unavailable("the store stopped"))

    def submit(self, pending: Pending) -> asyncio.Future[tuple[int, str]]:
        """Queue ``pending``; Unavailable at once when the queue is full or the writer stopped."""
        if self._task is None:
            raise Unavailable("the store is not running")
        if len(self._waiting) >= self._queue_size:
            raise Unavailable("the store's write queue is full")
        self._waiting.append(pending)
        self._wake.set()
        return pending.done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch: list[Pending] = []
                while self._waiting and len(batch) < self._batch_size:
                    pending = self._waiting.popleft()
                    if not pending.done.done():  # its publisher gave up waiting: skip it
                        batch.append(pending)
                if batch:
                    await self._write_one(batch)

    async def _write_one(self, batch: list[Pending]) -> None:
        self.batches += 1
        try:
            await self._write(batch)
        except asyncio.CancelledError:
            for pending in batch:
                _fail(pending, Unavailable("the store stopped"))
            raise
        except Exception as exc:
            if not isinstance(exc, Unavailable):
                log.exception("writing %d publications to the store failed", len(batch))
                exc = Unavailable(f"the store could not write: {exc}")
            for pending in batch:
                _fail(pending, exc)


def _fail(pending: Pending, exc: Exception) -> None:
    if not pending.done.done():
        pending.done.set_exception(exc)
