"""The server that tests/js/live.test.mjs runs the JS client against: the demo app plus test handlers.

``monument-ws run tests.js.live_app:create_app`` (from the repository root).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from monument_ws import MONUMENT_WS, Config, Frame, MonumentWSError, Socket, signals
from monument_ws.app_template.app import create_app as create_demo
from monument_ws.yields import Yield, sync


def create_app(config: Config | None = None) -> web.Application:
    app = create_demo(config)
    ws = app[MONUMENT_WS]
    cancelled = {"count": 0}
    welcomes: dict[str, int] = {}

    @ws.bus.on(signals.SOCKET_CONNECTED)
    async def count_welcome(event: str, *, socket: Socket, **_: Any) -> None:
        welcomes[socket.client_id] = welcomes.get(socket.client_id, 0) + 1

    @ws.handler("connections")
    async def connections(message: Frame, socket: Socket) -> int:
        """How many times the client id in ``data`` was welcomed (its first connect and reconnects)."""
        return welcomes.get(str(message.data), 0)

    @ws.handler("kick")
    async def kick(message: Frame, socket: Socket) -> None:
        """Kicks ``data["client_id"]`` with ``data["reason"]`` (close 4409)."""
        await ws.kick(client_id=str(message.data["client_id"]), reason=str(message.data["reason"]))

    @ws.handler("slow")
    async def slow(message: Frame, socket: Socket) -> str:
        """Answers after ``data`` seconds; counts the times it was cancelled instead."""
        try:
            await asyncio.sleep(float(message.data))
        except asyncio.CancelledError:
            cancelled["count"] += 1
            raise
        return "late"

    @ws.handler("forever")
    async def forever(message: Frame, socket: Socket) -> AsyncIterator[int]:
        """Streams 1, 2, 3 … until cancelled (counted)."""
        n = 0
        try:
            while True:
                n += 1
                yield n
                await asyncio.sleep(0.01)
        finally:
            cancelled["count"] += 1

    @ws.handler("cancelled")
    async def cancelled_count(message: Frame, socket: Socket) -> int:
        return cancelled["count"]

    @ws.handler("boards")
    async def boards(message: Frame, socket: Socket) -> AsyncIterator[Yield]:
        """Pushes each object of ``data`` as a SYNC ``board`` frame (full once, then patches)."""
        for value in message.data:
            yield sync(value, event="board")

    @ws.handler("close-me")
    async def close_me(message: Frame, socket: Socket) -> None:
        """Closes this socket with the code and reason in ``data``."""
        await socket.close(int(message.data["code"]), str(message.data["reason"]))

    @ws.handler("ask")
    async def ask(message: Frame, socket: Socket) -> Any:
        """Calls the client's ``data`` event; answers with its result or the error code."""
        try:
            return {"result": await socket.call(str(message.data), {"why": "test"}, timeout=10)}
        except MonumentWSError as exc:
            return {"error": exc.code.value}

    return app
