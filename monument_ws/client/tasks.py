"""The client's background tasks, and running the functions its user hands it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any


class Tasks:
    """Tasks the client started (writer, heartbeats, resubscribes, async handlers, ``every``).

    The set holds a strong reference to each until it is done (the event loop keeps
    only weak ones), and lets the client cancel them all when it closes.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()


async def maybe_await(value: Any) -> Any:
    """``value``, awaited first if it is awaitable: user functions may be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value
