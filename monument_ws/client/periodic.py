"""The Client's periodic tells and calls (:meth:`Client.every <monument_ws.client.Client.every>`,
smartersockets' setInterval): one task each, among the client's tasks, so closing the client
stops them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..protocol.errors import MonumentWSError
from .tasks import maybe_await


class Periodic:
    """A running :meth:`Client.every`; ``cancel()`` stops it (closing the client does too)."""

    def __init__(self, task: asyncio.Task[None]) -> None:
        self._task = task

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def cancelled(self) -> bool:
        return self._task.done()


async def repeat(
    interval: float,
    event: str,
    data: Any,
    send: Callable[[str, Any], Any],
    on_result: Callable[[Any], Any] | None,
) -> None:
    """Every ``interval`` seconds, ``send(event, payload)`` -- a tell, or with ``on_result`` a
    call whose answer (or error) goes to ``on_result``; ``data`` may be a function, called each
    time for the payload."""
    while True:
        await asyncio.sleep(interval)
        payload = data() if callable(data) else data
        if on_result is None:
            send(event, payload)
            continue
        try:
            result: Any = await send(event, payload)
        except MonumentWSError as exc:
            result = exc
        await maybe_await(on_result(result))
