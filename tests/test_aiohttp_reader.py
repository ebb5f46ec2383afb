"""The tap under aiohttp's reader: the contract it relies on, and the world handlers see.

The contract tests fail when aiohttp changes underneath monument_ws.connection.reader
(a new minor release, a changed ``_post_start``, a moved queue class): re-verify
the module against the new aiohttp, then update VERIFIED, the pin in
pyproject.toml and the recorded source digest here. The live tests check over
real sockets that text frames take the tap, that frames which arrived before a
socket was ready keep their order, and that a handler started from the tap
sees what one started by the reader task sees.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import re
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from monument_ws import signals
from monument_ws.auth import Session
from monument_ws.connection import reader as aiohttp_reader
from tests.conftest import DEADLINE, Connect, eventually, welcomed

#: sha256 of ``inspect.getsource(web.WebSocketResponse._post_start)`` in aiohttp 3.14.5, the
#: method TappedResponse._post_start replaces step for step.
POST_START_SHA256 = "5537cb3f2ecae6ed9f4d27d6d9255adb414e81efcc4d23ede6bacd762d56ed93"


def test_the_installed_aiohttp_is_one_the_tap_was_verified_on():
    """aiohttp's version is in VERIFIED, and pyproject.toml pins aiohttp to those releases."""
    assert aiohttp_reader.ENABLED, f"aiohttp {aiohttp.__version__} is not verified"
    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    (pin,) = [d for d in project["project"]["dependencies"] if d.startswith("aiohttp")]
    lowest, below = re.fullmatch(r"aiohttp>=([\d.]+),<([\d.]+)", pin).groups()  # type: ignore[union-attr]
    verified = [f"{major}.{minor}" for major, minor in aiohttp_reader.VERIFIED]
    assert lowest.rsplit(".", 1)[0] == verified[0]
    assert below == f"{aiohttp_reader.VERIFIED[-1][0]}.{aiohttp_reader.VERIFIED[-1][1] + 1}"


def test_post_start_is_the_one_the_tap_replaces():
    """aiohttp's WebSocketResponse._post_start is, to the character, the one TappedResponse
    mirrors; and the queue class still takes a Python override of feed_data."""
    source = inspect.getsource(web.WebSocketResponse._post_start)
    assert hashlib.sha256(source.encode()).hexdigest() == POST_START_SHA256, (
        "aiohttp changed WebSocketResponse._post_start: re-verify monument_ws.connection.reader"
    )
    for step in ("DEFAULT_CHUNK_SIZE", "set_parser", "keep_alive(False)", "_reset_heartbeat"):
        assert step in source
    queue = aiohttp_reader.TextTap.__mro__[1]
    assert "feed_data" in dir(queue)
    assert queue.__module__.startswith("aiohttp._websocket.reader")


def attached_tap(ws: Any) -> Any:
    (socket,) = list(ws.hub)
    tap = aiohttp_reader.tap_of(socket._ws)
    assert tap is not None
    return tap


async def test_text_frames_take_the_tap_and_control_frames_the_queue(make_server, connect: Connect):
    """Every request goes through the tap (no reader task wake-up), answered in order; a ping
    is still answered by aiohttp and a client close still closes with 1000."""
    client, ws = await make_server(heartbeat=0)
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    await eventually(lambda: len(ws.hub) == 1, "the socket")
    tap = attached_tap(ws)
    await eventually(lambda: tap.on_text is not None, "the tap attached")
    seen: list[Any] = []
    original = tap.on_text

    def counting(text: Any) -> None:
        seen.append(text)
        original(text)

    tap.on_text = counting
    for i in range(100):
        await peer.send({"event": "echo", "id": i, "data": i})
    assert [(await peer.recv())["data"] for _ in range(100)] == list(range(100))
    assert len(seen) == 100
    await peer.ws.ping(b"still there?")
    assert await peer.request({"event": "echo", "id": "after", "data": 1}) == {
        "event": "echo",
        "id": "after",
        "data": 1,
    }
    await peer.close()
    await eventually(lambda: len(ws.hub) == 0, "the socket gone")


async def test_frames_sent_before_the_socket_was_ready_keep_their_order(make_server):
    """A session parser holds the socket back while the client already sends 50 requests; they
    wait in aiohttp's queue, are taken first, and the tap takes over after them, in order."""
    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    release = asyncio.Event()

    async def slow_parser(request: Any) -> Session:
        await release.wait()
        return Session()

    ws.session_parser = slow_parser
    sock = await client.ws_connect("/ws", protocols=("monument.v1",))
    for i in range(50):
        await sock.send_json({"event": "echo", "id": i, "data": i})
    await asyncio.sleep(0.05)  # let them reach the server's queue
    release.set()
    peer = await welcomed(sock)
    for i in range(50, 100):
        await peer.send({"event": "echo", "id": i, "data": i})
    assert [(await peer.recv())["data"] for _ in range(100)] == list(range(100))
    assert attached_tap(ws).on_text is not None
    await peer.close()


ASKED = contextvars.ContextVar("asked", default="unset")


async def test_a_handler_started_from_the_tap_sees_its_own_task_and_the_sockets_context(
    make_server, connect: Connect
):
    """From the tap a handler still runs in a task of its own (not the socket's reader, never
    none), sees the context variables of the request that opened the socket, can use
    asyncio.timeout(), and its cancellation (ws:cancel) touches nothing else."""

    @web.middleware
    async def mark(request: web.Request, handler: Any) -> Any:
        ASKED.set(f"opened with {request.path}")
        return await handler(request)

    client, ws = await make_server(web.Application(middlewares=[mark]))
    readers: list[asyncio.Task[Any] | None] = []

    async def world(message: Any, socket: Any) -> Any:
        task = asyncio.current_task()
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(DEADLINE)
        except TimeoutError:
            timed_out = True
        return {
            "own_task": task is not None and task not in readers,
            "context": ASKED.get(),
            "timeout": timed_out,
        }

    async def forever(message: Any, socket: Any) -> Any:
        await asyncio.sleep(DEADLINE)

    ws.handler("world")(world)
    ws.handler("forever")(forever)

    ws.bus.on(signals.SOCKET_CONNECTED, lambda event, **_: readers.append(asyncio.current_task()))

    peer = await connect(client)
    await eventually(lambda: attached_tap(ws).on_text is not None, "the tap attached")
    answer = await peer.request({"event": "world", "id": 1})
    assert answer["data"] == {"own_task": True, "context": "opened with /ws", "timeout": True}
    await peer.send({"event": "forever", "id": 2})
    await peer.send({"event": "ws:cancel", "id": 3, "data": {"id": 2}})
    cancelled = await peer.recv()
    assert (cancelled["id"], cancelled["error"]["code"]) == (2, "cancelled")
    assert (await peer.recv())["id"] == 3
    assert (await peer.request({"event": "world", "id": 4}))["data"]["own_task"] is True
    await peer.close()


async def test_a_plain_response_reads_every_frame_the_public_way(monkeypatch, make_server, connect):
    """On an aiohttp the tap was not verified on, sockets get a plain WebSocketResponse and
    read every frame with receive(): the same answers."""
    monkeypatch.setattr(aiohttp_reader, "ENABLED", False)
    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    (socket,) = list(ws.hub)
    assert type(socket._ws) is web.WebSocketResponse
    assert aiohttp_reader.tap_of(socket._ws) is None
    assert [
        (await peer.request({"event": "echo", "id": i, "data": i}))["data"] for i in range(5)
    ] == [
        0,
        1,
        2,
        3,
        4,
    ]
    await peer.close()
