"""Server → client calls waiting for the client's ``ws:result`` / ``ws:error``.

A call is sent as ``{"event": ..., "call": n, "data": ...}`` -- the key
``call``, never ``id``, so it cannot be mistaken for a reply. ``n`` counts up
per socket. Every pending call is removed when answered, when it times out and
when the socket closes (then it fails with ConnectionLost): nothing leaks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..protocol.errors import MonumentWSError


class PendingCalls:
    """The calls one socket is waiting on, by call number."""

    __slots__ = ("_next", "_pending")

    def __init__(self) -> None:
        self._next = 1
        self._pending: dict[int, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def open(self) -> tuple[int, asyncio.Future[Any]]:
        number = self._next
        self._next += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[number] = future
        return number, future

    def resolve(self, number: object, value: Any) -> bool:
        """Deliver a result; False when no such call waits (e.g. it timed out already)."""
        future = self._pending.pop(number, None) if isinstance(number, int) else None
        if future is None or future.done():
            return False
        future.set_result(value)
        return True

    def reject(self, number: object, error: MonumentWSError) -> bool:
        future = self._pending.pop(number, None) if isinstance(number, int) else None
        if future is None or future.done():
            return False
        future.set_exception(error)
        return True

    def discard(self, number: int) -> None:
        self._pending.pop(number, None)

    def fail_all(self, error: MonumentWSError) -> None:
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(error)
