"""Handlers written against the typed ``Handler`` protocol run over a real socket; mypy, which
checks this file in CI, rejects one that cannot take ``(message, socket)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

import monument_ws
from monument_ws import Frame, Handler, Socket
from tests.conftest import Connect


async def test_typed_handlers_of_each_kind_answer(make_server, connect: Connect):
    """A coroutine, an async generator and a plain function, each typed (message, socket)."""
    client, plugin = await make_server()
    ws: monument_ws.MonumentWS = plugin  # typed, so mypy checks the handlers against Handler

    @ws.handler("double")
    async def double(message: Frame, socket: Socket) -> int:
        return int(message.data) * 2

    @ws.handler("count")
    async def count(message: Frame, socket: Socket) -> AsyncIterator[int]:
        for n in range(int(message.data)):
            yield n

    @ws.handler("whoami")
    def whoami(message: Frame, socket: Socket) -> dict[str, Any]:
        return {"client_id": socket.client_id}

    kept: Handler = double  # the decorator gives the function back, typed as it was
    assert kept is double
    peer = await connect(client)
    await peer.send({"event": "double", "id": 1, "data": 21})
    assert (await peer.recv())["data"] == 42
    await peer.send({"event": "count", "id": 2, "data": 2})
    chunks = [await peer.recv() for _ in range(3)]
    assert [c.get("data") for c in chunks[:2]] == [0, 1]
    assert chunks[2].get("end") is True
    await peer.send({"event": "whoami", "id": 3})
    assert (await peer.recv())["data"] == {"client_id": peer.client_id}


def test_a_handler_that_cannot_take_message_and_socket_is_a_type_error():
    """``no_socket`` would be called with two arguments; the ignore below is needed because
    mypy rejects it (with warn_unused_ignores, mypy fails if it ever stops rejecting it)."""
    ws = monument_ws.setup(web.Application(), websocket=True, bus=monument_ws.EventBus())

    def no_socket(message: Frame) -> None:
        """Takes one argument."""

    assert ws.handler("x")(no_socket) is no_socket  # type: ignore[type-var]
