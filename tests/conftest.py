"""Shared fixtures: a real aiohttp server on an ephemeral port and a raw WebSocket peer.

The peer speaks the wire protocol by hand (aiohttp's client WebSocket, no
monument_ws client code), so these tests check the server the way any
third-party client would see it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket as pysocket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import monument_ws
from monument_ws import EventBus, MonumentWS

#: Generous: a deadline for something that should happen, never a speed claim.
DEADLINE = 10.0


class Peer:
    """A raw protocol client over one real WebSocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.welcome = welcome

    @property
    def client_id(self) -> str:
        return str(self.welcome["data"]["client_id"])

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        elif isinstance(frame, str):
            await self.ws.send_str(frame)
        else:
            await self.ws.send_str(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=DEADLINE)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg!r}"
        frame = json.loads(msg.data)
        assert isinstance(frame, dict)
        return frame

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a frame with an id and return the frame that answers it (skipping others)."""
        await self.send(frame)
        while True:
            got = await self.recv()
            if got.get("id") == frame["id"]:
                return got

    async def closed(self) -> int | None:
        """Wait for the server to close the socket; return the close code."""
        while True:
            msg = await self.ws.receive(timeout=DEADLINE)
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.CLOSING,
            ):
                return self.ws.close_code
            if msg.type is aiohttp.WSMsgType.ERROR:
                return self.ws.close_code

    async def close(self) -> None:
        await self.ws.close()


Connect = Callable[..., Awaitable[Peer]]


async def frames_until(peer: Peer, fence: Any) -> list[dict[str, Any]]:
    """Every frame up to and including the ws:ping reply for ``fence``.

    ws:ping is answered by the reader as it reads the frame, so it fences what
    ran inline on earlier frames (plain handlers, errors); handlers in tasks
    may still be running: wait for them before using it as a fence.
    """
    await peer.send({"event": "ws:ping", "id": fence})
    got = []
    while True:
        frame = await peer.recv()
        got.append(frame)
        if frame.get("event") == "ws:ping" and frame.get("id") == fence:
            return got


@pytest.fixture
def bus() -> EventBus:
    """A fresh per-application bus, so tests never share receivers."""
    return EventBus("test")


@pytest.fixture
def make_server(
    aiohttp_client: Any, bus: EventBus
) -> Callable[..., Awaitable[tuple[TestClient[Any, Any], MonumentWS]]]:
    """Start a real server with monument_ws set up with ``settings``."""

    async def make(
        app: web.Application | None = None, **settings: Any
    ) -> tuple[TestClient[Any, Any], MonumentWS]:
        app = app or web.Application()
        settings.setdefault("websocket", True)
        # Tests open many sockets from 127.0.0.1; the address limits have their own tests.
        settings.setdefault("upgrade_rate", 0)
        settings.setdefault("max_sockets_per_ip", 1_000_000)
        plugin = monument_ws.setup(app, bus=bus, **settings)
        client = await aiohttp_client(app)
        return client, plugin

    return make


async def welcomed(ws: aiohttp.ClientWebSocketResponse) -> Peer:
    """Read the ``ws:welcome`` of a freshly opened socket and wrap it."""
    msg = await ws.receive(timeout=DEADLINE)
    welcome = json.loads(msg.data)
    assert welcome["event"] == "ws:welcome", welcome
    return Peer(ws, welcome)


@pytest.fixture
def connect() -> Connect:
    """Open a raw socket to a test client's server and read its ``ws:welcome``.

    The test client's connection pool holds 100 sockets; open more through
    your own ``aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))``.
    """

    async def open_peer(client: TestClient[Any, Any], path: str = "/ws", **kwargs: Any) -> Peer:
        kwargs.setdefault("protocols", ("monument.v1",))
        return await welcomed(await client.ws_connect(path, **kwargs))

    return open_peer


class Ticker:
    """An endless streaming handler (0, 1, 2, …): the sockets it ran on, and whether it was closed."""

    def __init__(self, ws: MonumentWS, event: str = "ticks") -> None:
        self.sockets: list[Any] = []
        self.closed = asyncio.Event()
        ws.handler(event)(self.ticks)

    async def ticks(self, message: Any, socket: Any) -> AsyncIterator[int]:
        self.sockets.append(socket)
        try:
            i = 0
            while True:
                yield i
                i += 1
                await asyncio.sleep(0.001)
        finally:
            self.closed.set()


class FakeClock:
    """Wall-clock seconds that move only when a test moves them, with a ``sleep`` on them.

    ``setup(app, clock=fake, sleep=fake.sleep)``: presence and the credential watcher then
    run on this time. ``advance(seconds)`` wakes every sleeper whose time has come.
    """

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        sleeper = (self.now + seconds, asyncio.get_running_loop().create_future())
        self._sleepers.append(sleeper)
        try:
            await sleeper[1]
        finally:
            self._sleepers.remove(sleeper)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for until, wake in self._sleepers:
            if until <= self.now and not wake.done():
                wake.set_result(None)

    def deadlines(self) -> list[float]:
        """When each task asleep on this clock wakes, soonest first."""
        return sorted(until for until, wake in self._sleepers if not wake.done())


async def eventually(predicate: Callable[[], bool], what: str = "condition") -> None:
    """Poll ``predicate`` until true, failing after a generous deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


REDIS_URL = os.environ.get("MONUMENT_WS_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["memory", "redis"])
def broker_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for servers sharing one broker: the memory broker (one server) or Redis (each
    test under a key prefix of its own)."""
    if request.param == "memory":
        return {}
    prefix = request.getfixturevalue("redis_prefix")
    return {"broker": REDIS_URL, "broker_prefix": prefix}


def redis_available() -> None:
    """Skip (or, in CI, fail) when no Redis answers at REDIS_URL."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        message = (
            f"Redis is not reachable at {REDIS_URL} ({exc}); start it with scripts/ensure-redis "
            "or point MONUMENT_WS_TEST_REDIS at one to run the Redis tests"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix per test; its keys are deleted afterwards."""
    import uuid

    import redis

    redis_available()
    prefix = f"mwstest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


# --- raw sockets: a client that controls its own buffers and bytes ---------------


def masked_text(payload: bytes) -> bytes:
    """One masked client TEXT frame (FIN set) carrying ``payload``."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    if n < 126:
        header = bytes((0x81, 0x80 | n))
    elif n < 65536:
        header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
    return header + mask + masked


async def open_raw(client: Any, rcvbuf: int | None = None) -> tuple[Any, Any]:
    """A hand-made WebSocket upgrade over a plain TCP socket (optionally a tiny receive buffer)."""
    raw = pysocket.socket()
    if rcvbuf is not None:
        raw.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_RCVBUF, rcvbuf)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (client.host, client.port))
    reader, writer = await asyncio.open_connection(sock=raw)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: {client.host}:{client.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    return reader, writer


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), DEADLINE)
    n = second & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(n)


async def chat_send_round_trip(
    sender: aiohttp.ClientWebSocketResponse, other: aiohttp.ClientWebSocketResponse
) -> None:
    """The docs' plugs example, over two welcomed sockets: ``chat/send`` reaches the other
    socket as a push, and the sender's reply streams ``"sent"`` then its end."""
    await sender.send_json({"event": "chat/send", "id": 1, "data": "hi"})
    assert await other.receive_json(timeout=DEADLINE) == {
        "event": "chat/send",
        "data": {"text": "hi"},
    }
    frames = [await sender.receive_json(timeout=DEADLINE) for _ in range(3)]
    assert frames[1:] == [
        {"event": "chat/send", "id": 1, "data": "sent", "more": True},
        {"event": "chat/send", "id": 1, "end": True},
    ]


# --- PostgreSQL: the store of persisted channels ------------------------------------

POSTGRES_URL = os.environ.get(
    "MONUMENT_WS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


async def postgres_available() -> None:
    """Skip (or, in CI, fail) when no PostgreSQL answers at POSTGRES_URL."""
    import asyncpg

    try:
        connection = await asyncpg.connect(POSTGRES_URL, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        message = (
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}); start it with "
            "scripts/ensure-postgres or point MONUMENT_WS_TEST_POSTGRES at one to run the "
            "store tests"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    await connection.close()


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own (runs in parallel never meet); dropped afterwards."""
    import uuid

    import asyncpg

    await postgres_available()
    schema = f"mwstest_{uuid.uuid4().hex[:12]}"
    yield schema
    connection = await asyncpg.connect(POSTGRES_URL, timeout=DEADLINE)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
