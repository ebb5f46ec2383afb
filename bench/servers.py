"""The three servers the benchmark compares, each a separate process.

    python bench/servers.py {monument,aiohttp,socketio} PORT [--redis URL]

Besides them, variants measured in some scenarios: ``monument+demo`` (the demo
app exactly as ``monument-ws run`` serves it, with :data:`LOAD_TEST_FLAGS`;
its ``echo`` is a plain function, so it runs inline), ``monument+hook`` (with an
outgoing frame hook), ``monument+formats`` (with endpoints for the three other wire
formats, :data:`ENDPOINTS`) and the floor of the request path, ``monument+bare``
(handlers run inline) and ``monument+bare-task`` (a task per request), which
speak monument_ws's wire format with none of its features (:func:`bare_app`).

Every server offers the same four things, each in its own idiom, so the load
generator (bench/loadgen.mjs) can drive them alike:

* an acked request/response ``echo`` (monument: an ``async def`` handler
  answering the frame's ``id``, so each request is a task; aiohttp: the text
  frame sent straight back; socket.io: an event whose ack returns the data);
* a channel ``bench`` to subscribe to (monument: ``ws:subscribe``; aiohttp: a
  set of sockets; socket.io: a room);
* a trigger ``fanout`` that makes the server itself send ``count`` messages to
  that channel (monument: ``ws.publish``; aiohttp: a ``send_str`` loop over the
  set; socket.io: ``emit(..., room=...)``);
* with ``--redis``: publish from one process, deliver in another (monument:
  the Redis broker and ``ws:publish``; aiohttp: redis-py pub/sub relaying to
  the set; socket.io: ``AsyncRedisManager``).

Compression is off everywhere (the load generator never offers
permessage-deflate) and heartbeats are long enough not to run during a
measurement. The runner waits until the port accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

CHANNEL = "bench"


def hooked_app(redis: str | None, prefix: str) -> web.Application:
    """monument_ws with an outgoing frame hook stamping ``sender`` and ``dt`` on every frame."""
    import time

    import monument_ws

    app = monument_app(redis, prefix)

    @app[monument_ws.MONUMENT_WS].middleware.outgoing
    def stamp(frame: dict[str, Any], sock: Any) -> None:
        frame["sender"] = "bench"
        frame["dt"] = time.time()

    return app


#: The endpoints of ``monument+formats``: every wire format monument_ws speaks besides its own
#: (docs/protocol.md, "Endpoints and codecs"), at the paths bench/loadgen.mjs uses.
ENDPOINTS = {"/ss": "serverless-sockets", "/sss": "super-scaled-sockets", "/owl": "owlmeans"}


def formats_app(redis: str | None, prefix: str) -> web.Application:
    """monument_ws with the three endpoints on, so one channel has subscribers of four formats."""
    return monument_app(redis, prefix, endpoints=ENDPOINTS)


def monument_app(redis: str | None, prefix: str, **settings: Any) -> web.Application:
    import monument_ws

    app = web.Application()
    ws = monument_ws.setup(
        app,
        websocket=True,
        bus=monument_ws.EventBus(),
        broker=redis or "memory://",
        broker_prefix=prefix,
        upgrade_rate=0,
        rate_limit=1_000_000,  # on, so its per-frame cost is counted, but never reached
        rate_burst=1_000_000,
        max_sockets_per_ip=100_000,
        heartbeat=0,
        channels={CHANNEL: {"publish": "anyone"}},
        **settings,
    )

    @ws.handler("echo")
    async def echo(message: Any, socket: Any) -> Any:
        return message.data

    @ws.handler("fanout")
    async def fanout(message: Any, socket: Any) -> int:
        payload = message.data["payload"]
        for n in range(message.data["count"]):
            await ws.publish(CHANNEL, "tick", {"n": n, "payload": payload})
        return int(message.data["count"])

    return app


def bare_app(inline: bool) -> Callable[[str | None, str], web.Application]:
    """The floor of this protocol's request path: what any server of it must do per request.

    orjson decode, :func:`monument_ws.protocol.validate`, look the handler up,
    run it, encode ``{event, id, data}``, frame it and write it -- no limits,
    counters, hooks, auth, routing modes or per-socket state. ``inline``: the
    handler's coroutine runs in the reader's step and must finish without
    suspending (``echo`` does); otherwise one task per request. Only ``echo``
    is served: it is the reference for the request/response scenarios alone.
    """

    def make(redis: str | None, prefix: str) -> web.Application:
        import orjson

        from monument_ws.connection.reads import small_reads
        from monument_ws.protocol.frames import Frame, validate
        from monument_ws.protocol.writer import text_frame

        async def echo(frame: Frame) -> Any:
            return frame.data

        handlers = {"echo": echo}
        welcome = text_frame(b'{"event":"ws:welcome","data":{}}')

        async def handle(request: web.Request) -> web.WebSocketResponse:
            sock = web.WebSocketResponse(compress=False, max_msg_size=0, decode_text=False)
            await sock.prepare(request)
            transport = request.transport
            assert transport is not None
            small_reads(transport)  # what any server on asyncio's selector loop should do
            transport.write(welcome)
            loop = asyncio.get_running_loop()

            def answer(frame: Frame, value: Any) -> None:
                body = {"event": frame.event, "id": frame.id, "data": value}
                transport.write(text_frame(orjson.dumps(body)))

            running: set[asyncio.Task[None]] = set()  # strong references, as any server keeps

            async def in_task(frame: Frame, handler: Any) -> None:
                try:
                    answer(frame, await handler(frame))
                finally:
                    running.discard(asyncio.current_task())

            async for msg in sock:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = validate(orjson.loads(msg.data))
                if type(frame) is not Frame:
                    continue
                handler = handlers.get(frame.event)
                if handler is None:
                    continue
                if not inline:
                    running.add(loop.create_task(in_task(frame, handler)))
                    continue
                coro = handler(frame)
                try:
                    coro.send(None)
                except StopIteration as done:
                    answer(frame, done.value)
                else:
                    coro.close()
                    raise RuntimeError("the bare inline server only runs handlers that never wait")
            return sock

        app = web.Application()
        app.router.add_get("/ws", handle)
        return app

    return make


def aiohttp_app(redis: str | None, prefix: str) -> web.Application:
    """Raw aiohttp: what a hand-written server does, no protocol and no JSON."""
    app = web.Application()
    subscribers: set[web.WebSocketResponse] = set()

    async def fan(text: str) -> None:
        for sock in list(subscribers):
            await sock.send_str(text)

    async def handle(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse(compress=False, max_msg_size=0)
        await sock.prepare(request)
        try:
            async for msg in sock:
                if msg.type is not WSMsgType.TEXT:
                    continue
                text = msg.data
                if text == "sub":
                    subscribers.add(sock)
                    await sock.send_str("subscribed")
                elif text.startswith("fanout:"):
                    _, count, payload = text.split(":", 2)
                    for n in range(int(count)):
                        await fan(f'{{"n":{n},"payload":"{payload}"}}')
                elif text.startswith("pub:"):
                    await app["redis"].publish(prefix + CHANNEL, text[4:])
                else:
                    await sock.send_str(text)
        finally:
            subscribers.discard(sock)
        return sock

    app.router.add_get("/ws", handle)
    if redis:
        import redis.asyncio as aioredis

        async def relay(app: web.Application) -> Any:
            client = aioredis.from_url(redis)
            app["redis"] = client
            pubsub = client.pubsub()
            await pubsub.subscribe(prefix + CHANNEL)

            async def pump() -> None:
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        await fan(message["data"].decode())

            task = asyncio.create_task(pump())
            yield
            task.cancel()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()

        app.cleanup_ctx.append(relay)
    return app


def socketio_app(redis: str | None, prefix: str) -> web.Application:
    import socketio  # type: ignore[import-untyped]

    manager = socketio.AsyncRedisManager(redis, channel=prefix) if redis else None
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, ping_interval=300, ping_timeout=300
    )
    app = web.Application()
    sio.attach(app)

    @sio.on("echo")  # type: ignore[untyped-decorator]
    async def echo(sid: str, data: Any) -> Any:
        return data

    @sio.on("sub")  # type: ignore[untyped-decorator]
    async def sub(sid: str, data: Any = None) -> str:
        await sio.enter_room(sid, CHANNEL)
        return "subscribed"

    @sio.on("fanout")  # type: ignore[untyped-decorator]
    async def fanout(sid: str, data: Any) -> int:
        for n in range(data["count"]):
            await sio.emit("tick", {"n": n, "payload": data["payload"]}, room=CHANNEL)
        return int(data["count"])

    @sio.on("pub")  # type: ignore[untyped-decorator]
    async def pub(sid: str, data: Any) -> None:
        await sio.emit("tick", data, room=CHANNEL)

    return app


APPS = {
    "monument": monument_app,
    "monument+hook": hooked_app,
    "monument+formats": formats_app,
    "monument+bare": bare_app(inline=True),
    "monument+bare-task": bare_app(inline=False),
    "aiohttp": aiohttp_app,
    "socketio": socketio_app,
}


#: What a load test changes in ``monument-ws run``: every limit stays on, the rate and per-address
#: limits are raised out of the way of one machine's 1,000 sockets, and heartbeats are off.
LOAD_TEST_FLAGS = (
    "--upgrade-rate", "0",
    "--rate-limit", "1000000",
    "--rate-burst", "1000000",
    "--max-sockets-per-ip", "100000",
    "--max-connections-per-ip", "100000",
    "--heartbeat", "0",
)  # fmt: skip


def run_demo(port: int) -> None:
    """``monument-ws run`` serving the demo app, in this very process (the runner measures it)."""
    import os
    import sys

    argv = [sys.executable, "-m", "monument_ws", "run", "--port", str(port), *LOAD_TEST_FLAGS]
    os.execv(sys.executable, argv)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("server", choices=[*APPS, "monument+demo"])
    parser.add_argument("port", type=int)
    parser.add_argument("--redis")
    parser.add_argument("--prefix", default="bench:")
    args = parser.parse_args()
    if args.server == "monument+demo":
        run_demo(args.port)
    app = APPS[args.server](args.redis, args.prefix)

    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
