"""Socket event handlers: ``handler(message, socket)``; the return value is the reply.

A handler that awaits nothing can be a plain function (``echo``): it runs at
once as the frame is read, without a task. ``async def`` handlers each run as
their own task, and a stream is an async generator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from monument_ws import Frame, MonumentWS, Socket


def register(ws: MonumentWS) -> None:
    @ws.handler("echo")
    def echo(message: Frame, socket: Socket) -> Any:
        """Replies with the request's own data."""
        return message.data

    @ws.handler("countdown")
    async def countdown(message: Frame, socket: Socket) -> AsyncIterator[int]:
        """A streamed reply: yields data, data-1, … 1 (at most 10), one chunk at a time."""
        start = min(int(message.data or 5), 10)
        for n in range(start, 0, -1):
            yield n
            await asyncio.sleep(0.2)

    @ws.handler("greet-me")
    async def greet_me(message: Frame, socket: Socket) -> str:
        """Calls the client back (``ask-name``) and greets it by the name it answers."""
        name = await socket.call("ask-name", timeout=30)
        return f"Hello, {name}!"

    @ws.handler("inbox")
    async def inbox(message: Frame, socket: Socket) -> Any:
        """Takes the oldest message this client enqueued (``client.enqueue``) whose ``kind``
        is the request's ``kind`` (any without one); None when there is none."""
        kind = message.data.get("kind") if isinstance(message.data, dict) else None
        taken = await socket.consume(
            None
            if kind is None
            else lambda data: isinstance(data, dict) and data.get("kind") == kind
        )
        return None if taken is None else taken.data
