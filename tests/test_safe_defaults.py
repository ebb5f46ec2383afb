"""Mistakes that explain themselves, and defaults that hold with several processes."""

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import web

import monument_ws
from monument_ws.bus import EventBus
from monument_ws.client import Client


async def test_sockets_off_with_handlers_warns_once_and_the_client_says_404(
    aiohttp_client: Any, bus: EventBus, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    """Handlers and data providers without websocket=True: one start-up warning naming the
    setting; the client's error carries the URL and the HTTP status."""
    app = web.Application()
    ws = monument_ws.setup(app, bus=bus, plugs=str(tmp_path))
    ws.handler("echo")(lambda message, socket: message.data)
    bus.on("data:get:greeting", lambda event, **_: "hi")
    with caplog.at_level(logging.WARNING, logger="monument_ws"):
        client = await aiohttp_client(app)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "echo, data:get:greeting" in warnings[0]
    assert "websocket=True" in warnings[0]
    assert "--websocket true" in warnings[0]

    async def no_wait(delay: float) -> None:
        pass

    url = str(client.make_url("/ws"))
    c = Client(url, sleep=no_wait)
    with pytest.raises(monument_ws.ConnectionLost) as refused:
        await c.connect()
    assert str(refused.value) == (
        f"{url} answered HTTP 404, not a WebSocket upgrade "
        "(is websocket=True set on the server, and is the path right?)"
    )


async def test_sockets_off_with_nothing_to_serve_says_nothing(
    aiohttp_client: Any, bus: EventBus, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    """An app that only uses the ops endpoints is not warned about."""
    app = web.Application()
    monument_ws.setup(app, bus=bus, plugs=str(tmp_path / "missing"), health=True)
    with caplog.at_level(logging.WARNING, logger="monument_ws"):
        await aiohttp_client(app)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_plugs_folder_without_sockets_is_named(
    aiohttp_client: Any, bus: EventBus, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    (tmp_path / "hello.py").write_text("async def handle(message, socket):\n    return 1\n")
    app = web.Application()
    monument_ws.setup(app, bus=bus, plugs=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="monument_ws"):
        await aiohttp_client(app)
    assert [r.getMessage() for r in caplog.records if "plugs" in r.getMessage()]


async def test_a_refused_upgrade_with_another_status_is_named(make_server: Any) -> None:
    """A 503 (too many sockets from this address) is said as it is, without the 404 hint."""
    client, _ = await make_server(max_sockets_per_ip=1)
    first = await client.ws_connect("/ws")

    async def no_wait(delay: float) -> None:
        pass

    url = str(client.make_url("/ws"))
    c = Client(url, sleep=no_wait)
    with pytest.raises(monument_ws.ConnectionLost) as refused:
        await c.connect()
    assert str(refused.value) == f"{url} answered HTTP 503, not a WebSocket upgrade"
    await first.close()
    await asyncio.sleep(0)
