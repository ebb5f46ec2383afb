"""Test your app the way a client uses it: a real server on an ephemeral port and a real client.

::

    from monument_ws.testing import Communicator

    async def test_echo():
        async with Communicator(create_app()) as comm:
            assert await comm.call("echo", 1) == 1
            await comm.call("subscribe-me")
            assert await comm.receive_event("news") == {"title": "..."}

Like Channels' WebsocketCommunicator, but over a real TCP socket: the app
runs its startup and shutdown, and the client is :class:`monument_ws.client.Client`
(reconnects, queues, resumes). Every push is recorded from the moment the
client connects, so ``receive_event`` never misses one that arrived before it
was awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from .client import Client
from .protocol.errors import Timeout


class Communicator:
    """Serve ``app`` on 127.0.0.1 (ephemeral port) and connect one :class:`Client` to ``path``."""

    def __init__(self, app: web.Application, path: str = "/ws", **client_options: Any) -> None:
        self.app = app
        self.path = path
        self.server = TestServer(app)
        self._options = client_options
        self._client: Client | None = None
        self._pushes: dict[str, asyncio.Queue[Any]] = {}
        self.frames: list[dict[str, Any]] = []  # every frame received, in order

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError(
                'Communicator is not started: use "async with Communicator(app) as comm"'
            )
        return self._client

    async def __aenter__(self) -> Communicator:
        await self.server.start_server()
        self._client = Client(str(self.server.make_url(self.path)), **self._options)
        self._client.listen(self._record)
        try:
            await self._client.connect()
        except BaseException:
            await self.server.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()
        await self.server.close()

    def _record(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        event = frame.get("event")
        if isinstance(event, str) and "id" not in frame and "call" not in frame:
            self._queue(event).put_nowait(frame.get("data"))

    def _queue(self, event: str) -> asyncio.Queue[Any]:
        return self._pushes.setdefault(event, asyncio.Queue())

    async def receive_event(self, event: str, timeout: float = 10.0) -> Any:
        """The data of the next push of ``event`` (recorded since connect); Timeout if none comes."""
        try:
            async with asyncio.timeout(timeout):
                return await self._queue(event).get()
        except TimeoutError:
            raise Timeout(f"no {event!r} push within {timeout:g} s") from None

    async def call(self, event: str, data: Any = None, **options: Any) -> Any:
        return await self.client.call(event, data, **options)

    def tell(self, event: str, data: Any = None) -> None:
        self.client.tell(event, data)

    async def stream(self, event: str, data: Any = None) -> AsyncIterator[Any]:
        async for item in self.client.stream(event, data):
            yield item

    async def get(self, path: str) -> Any:
        """GET ``path`` on the same server and return its JSON (raises for an error status)."""
        return await self._get(path, json=True)

    async def get_text(self, path: str) -> str:
        """GET ``path`` on the same server and return its body (raises for an error status)."""
        return str(await self._get(path, json=False))

    async def _get(self, path: str, *, json: bool) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.server.make_url(path)) as response,
        ):
            response.raise_for_status()
            return await (response.json() if json else response.text())
