"""The event "hello": the file is the event. Edit it under `monument-ws run --reload`
and the next request gets the new answer, on the same socket."""

from __future__ import annotations

from typing import Any

from monument_ws import Frame, Socket


async def handle(message: Frame, socket: Socket) -> Any:
    return f"Hello, {message.data or 'world'}!"
