"""The server that tests/js/live.test.mjs runs the JS client against: the demo app plus test handlers.

``monument-ws run tests.js.live_app:create_app`` (from the repository root).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from monument_ws import MONUMENT_WS, Config, Frame, MonumentWSError, Socket, Unauthorized, signals
from monument_ws.app_template.app import create_app as create_demo
from monument_ws.auth import AuthStep, Session
from monument_ws.channels.peer_queues import out_box
from monument_ws.protocol.yields import Yield, sync


def create_app(config: Config | None = None) -> web.Application:
    app: web.Application = create_demo(config)
    ws = app[MONUMENT_WS]
    cancelled = {"count": 0}
    welcomes: dict[str, int] = {}
    skew = {"seconds": 0.0}
    # Presence runs on this clock, which "presence-later" moves forward (no test sleeps).
    ws.presence.clock = lambda: time.time() + skew["seconds"]
    ws.namespaces.add("lobby:*", presence=True, presence_events=True)
    demo_parse = ws.session_parser

    async def parse(request: web.Request) -> Session | None:
        """``?as=<user>`` makes the socket that user's, with session id ``session-of-<user>``
        (Node's WebSocket sends no headers); anything else goes to the demo's parser."""
        user = request.query.get("as")
        if user:
            return Session(user=user, id=f"session-of-{user}")
        assert demo_parse is not None
        return await demo_parse(request)

    ws.session_parser = parse

    @ws.handler("to-user")
    async def to_user(message: Frame, socket: Socket) -> None:
        """Publishes ``data["data"]`` as ``note`` to user ``data["user"]``'s channel."""
        await ws.publish_to_user(str(message.data["user"]), "note", message.data["data"])

    @ws.handler("to-session")
    async def to_session(message: Frame, socket: Socket) -> None:
        """Publishes ``data["data"]`` as ``note`` to session ``data["session"]``'s channel."""
        await ws.publish_to_session(str(message.data["session"]), "note", message.data["data"])

    @ws.handler("presence-later")
    async def presence_later(message: Frame, socket: Socket) -> None:
        """Moves the presence clock ``data`` seconds on, then sweeps twice."""
        skew["seconds"] += float(message.data)
        await ws.presence.sweep()
        await ws.presence.sweep()

    @ws.middleware.outgoing
    def stamp(frame: dict[str, Any], socket: Socket | None) -> None:
        """Every frame this server writes carries ``"sender": "live-app"``."""
        frame["sender"] = "live-app"

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

    @ws.handler("whoami")
    async def whoami(message: Frame, socket: Socket) -> Any:
        """The ``sender`` key of the request as the server received it (a client hook's stamp)."""
        return message.raw.get("sender")

    @ws.handler("push-me")
    async def push_me(message: Frame, socket: Socket) -> None:
        """Pushes each item of ``data`` to this socket as a ``news`` event, then answers."""
        for item in message.data:
            await socket.send("news", item)

    @ws.handler("queue-for")
    async def queue_for(message: Frame, socket: Socket) -> list[int]:
        """Queues each of ``data["items"]`` for ``data["client_id"]``; answers their seqs."""
        client_id = str(message.data["client_id"])
        return [await ws.enqueue(client_id, item) for item in message.data["items"]]

    @ws.handler("take")
    async def take(message: Frame, socket: Socket) -> list[Any]:
        """Consumes this client's oldest queued message of kind ``data`` (any kind: null);
        answers ``[messages left, the message's data or null]``."""
        kind = message.data
        taken = await socket.consume(None if kind is None else lambda d: d.get("kind") == kind)
        return [await socket.enqueued(), None if taken is None else taken.data]

    @ws.handler("box")
    async def box(message: Frame, socket: Socket) -> list[Any]:
        """The data of the messages kept for client id ``data`` (server → client box)."""
        items = await ws.broker.queue_read(out_box(str(message.data)), 0)
        return [orjson.loads(item) for _, item in items]

    async def authenticate(socket: Socket, stage: str, data: Any) -> AuthStep:
        """Staged auth: ``init`` → ``challenge`` (a nonce); ``answer`` ``sesame`` →
        ``authenticated`` as ``data["user"]``; anything else is refused."""
        if stage == "init":
            return AuthStep("challenge", {"nonce": "n-1"})
        if stage == "answer" and data.get("answer") == "sesame":
            user = str(data.get("user"))
            return AuthStep("authenticated", {"hello": user}, Session(user=user))
        raise Unauthorized("that is not the answer")

    ws.authenticator = authenticate
    credentials: list[Any] = []

    async def authorize(event: str, *, message: dict[str, Any], **_: Any) -> Any:
        """A passthrough receiver (no handler has the event): records the message's
        ``credentialsObj`` key and answers it back."""
        credentials.append(message.get("credentialsObj"))
        return {"credentialsObj": message.get("credentialsObj")}

    ws.bus.on("authorize", authorize)

    @ws.handler("credentials")
    async def credentials_seen(message: Frame, socket: Socket) -> list[Any]:
        """The ``credentialsObj`` of every ``authorize`` message the receiver got, in order."""
        return credentials

    clock = {"t": 0}

    @ws.bus.on("data:get:clock", live=True)
    async def clock_value(event: str, **_: Any) -> int:
        """A live value: a socket that asked it gets every later unscoped ``data:set:clock``."""
        return clock["t"]

    @ws.handler("set-clock")
    async def set_clock(message: Frame, socket: Socket) -> None:
        """Sets the clock to ``data`` for everyone (an unscoped ``data:set:clock``)."""
        clock["t"] = int(message.data)
        await ws.bus.emit("data:set:clock", clock["t"])

    ws.namespaces.add("closed:*", subscribe="nobody")

    @ws.handler("publish-many")
    async def publish_many(message: Frame, socket: Socket) -> int:
        """Publishes ``item`` 1..``data["count"]`` to ``data["channel"]``; returns the last
        offset."""
        offset = 0
        for n in range(1, int(message.data["count"]) + 1):
            offset = await ws.publish(str(message.data["channel"]), "item", n)
        return offset

    return app
