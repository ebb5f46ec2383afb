"""Server-side request/response over real sockets: replies, streams, cancel, server → client calls.

Related tests elsewhere: handler return values and MonumentWSError codes,
ws:cancel of a plain handler, aclose() on socket close, the max_inflight /
max_waiting limits (tests/test_routing.py).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import socket as pysocket
import threading
from typing import Any

from monument_ws import ConnectionLost, Forbidden, Timeout
from monument_ws.client import Client
from tests.conftest import DEADLINE, Connect, Ticker, eventually, frames_until


async def test_reply_exactly_once_per_id(make_server, connect: Connect, caplog):
    """A handler that replies itself, returns a value and then fails still answers its id once."""
    client, ws = await make_server()

    @ws.handler("twice")
    async def twice(message, socket):
        sockets.append(socket)
        assert await socket.reply(message, "first")
        assert not await socket.reply(message, "second")
        raise RuntimeError("after the answer")

    sockets: list[Any] = []
    peer = await connect(client)
    with caplog.at_level(logging.ERROR, "monument_ws"):
        await peer.send({"event": "twice", "id": 1})
        assert await peer.recv() == {"event": "twice", "id": 1, "data": "first"}
        await eventually(lambda: sockets[0].running == 0, "the handler finished")
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]
    assert "after the answer" in caplog.text  # logged on the server, not sent


async def test_a_thousand_concurrent_calls_over_one_socket(make_server):
    """1,000 calls at once are all answered right, out of order, never more than max_inflight running."""
    client, ws = await make_server(max_inflight=8, rate_limit=0)
    running = peak = 0

    @ws.handler("double")
    async def double(message, socket):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(random.random() / 200)
            return message.data * 2
        finally:
            running -= 1

    order: list[int] = []
    async with Client(str(client.make_url("/ws"))) as c:
        c.listen(lambda frame: order.append(frame["id"]) if frame["event"] == "double" else None)
        results = await asyncio.gather(*(c.call("double", i) for i in range(1000)))
    assert results == [2 * i for i in range(1000)]
    assert sorted(order) == list(range(1, 1001))  # one reply per id
    assert order != sorted(order)  # the answers overtook each other
    assert 1 < peak <= 8


async def test_streamed_reply_in_order_and_terminated(make_server, connect: Connect):
    """An async generator's items arrive as chunks in order, then one end frame without data."""
    client, ws = await make_server(send_buffer_frames=8)

    @ws.handler("count")
    async def count(message, socket):
        sockets.append(socket)
        for i in range(message.data):
            yield i

    sockets: list[Any] = []
    peer = await connect(client)
    await peer.send({"event": "count", "id": "s", "data": 200})
    frames = [await peer.recv() for _ in range(201)]
    chunks = [{"event": "count", "id": "s", "data": i, "more": True} for i in range(200)]
    assert frames == [*chunks, {"event": "count", "id": "s", "end": True}]
    await eventually(lambda: sockets[0].running == 0, "the handler finished")
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]


def _read_stream_raw(port: int, request: bytes, events: list[str]) -> None:
    """A consumer as fast as a socket can be read, in a thread: a hand-made WebSocket
    handshake, one masked request frame, then raw reads until the stream's end frame.
    It keeps the server's transport buffer empty, so the server never has to wait for it."""
    with pysocket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        received = b""
        while b"ws:welcome" not in received:
            data = sock.recv(65536)
            if not data:
                events.append("closed before the welcome")
                return
            received += data
        assert len(request) < 126
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(request))
        sock.sendall(bytes([0x81, 0x80 | len(request)]) + mask + masked)
        tail = b""
        while True:
            data = sock.recv(1 << 20)
            if not data:
                events.append("closed before the end")
                return
            if b'"end":true' in tail + data:
                events.append("end")
                return
            tail = data[-32:]


async def test_a_stream_that_never_awaits_lets_other_sockets_be_served(
    make_server, connect: Connect
):
    """A generator that never awaits, read by a client that keeps up, takes the fast write
    path for every chunk; the stream still hands the event loop over regularly, so another
    socket's ws:ping is answered while the generator still has chunks to give — before the
    stream's end frame is sent and arrives."""
    client, ws = await make_server()
    started = asyncio.Event()
    events: list[str] = []

    @ws.handler("long")
    async def long(message, socket):
        started.set()
        for i in range(100_000):
            yield i
        events.append("generator done")  # the end frame is sent after this

    other = await connect(client)
    consumer = threading.Thread(
        target=_read_stream_raw,
        args=(client.port, b'{"event":"long","id":1}', events),
        daemon=True,
    )
    consumer.start()
    async with asyncio.timeout(DEADLINE):
        await started.wait()
    reply = await other.request({"event": "ws:ping", "id": "p"})
    assert reply == {"event": "ws:ping", "id": "p", "data": {}}
    events.append("pong")
    await asyncio.to_thread(consumer.join, DEADLINE)
    assert events == ["pong", "generator done", "end"]


async def test_cancelling_a_stream(make_server, connect: Connect):
    """ws:cancel ends a stream with a cancelled error, closes the generator and frees its slot."""
    client, ws = await make_server()
    ticker = Ticker(ws)

    peer = await connect(client)
    await peer.send({"event": "ticks", "id": 7})
    assert (await peer.recv())["data"] == 0
    await peer.send({"event": "ws:cancel", "id": "c", "data": {"id": 7}})
    seen = []
    while (frame := await peer.recv()).get("more"):
        seen.append(frame["data"])
    assert seen == list(range(1, len(seen) + 1))  # chunks already on the way, still in order
    assert frame == {
        "event": "ws:error",
        "id": 7,
        "error": {"code": "cancelled", "message": "cancelled by the client"},
    }
    assert await peer.recv() == {"event": "ws:cancel", "id": "c", "data": {}}
    await asyncio.wait_for(ticker.closed.wait(), DEADLINE)
    await eventually(lambda: ticker.sockets[0].running == 0, "the slot released")
    frames = await frames_until(peer, "fence")
    assert frames == [{"event": "ws:ping", "id": "fence", "data": {}}]  # no chunk, no end after


async def test_cancelling_an_unknown_id(make_server, connect: Connect):
    """ws:cancel of nothing running answers not_found; without an id to answer it is silent."""
    client, _ = await make_server()
    peer = await connect(client)
    answer = await peer.request({"event": "ws:cancel", "id": 1, "data": {"id": 99}})
    assert answer["error"]["code"] == "not_found"
    await peer.send({"event": "ws:cancel", "data": {"id": 99}})
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]


async def test_handler_exception_becomes_internal_without_traceback(
    make_server, connect: Connect, caplog
):
    """A handler's exception (plain, coroutine or mid-stream) is `internal`, its detail stays in the log."""
    client, ws = await make_server()

    @ws.handler("plain")
    def plain(message, socket):
        raise ValueError("secret detail in plain")

    @ws.handler("coro")
    async def coro(message, socket):
        raise KeyError("secret detail in coro")

    @ws.handler("stream")
    async def stream(message, socket):
        yield 1
        raise RuntimeError("secret detail in stream")

    peer = await connect(client)
    internal = {"code": "internal", "message": "internal error"}
    with caplog.at_level(logging.ERROR, "monument_ws"):
        assert await peer.request({"event": "plain", "id": 1}) == {
            "event": "ws:error",
            "id": 1,
            "error": internal,
        }
        assert (await peer.request({"event": "coro", "id": 2}))["error"] == internal
        await peer.send({"event": "stream", "id": 3})
        assert await peer.recv() == {"event": "stream", "id": 3, "data": 1, "more": True}
        assert await peer.recv() == {"event": "ws:error", "id": 3, "error": internal}
    for where in ("plain", "coro", "stream"):
        assert f"secret detail in {where}" in caplog.text
    assert caplog.text.count("Traceback") == 3
    assert ws.stats.errors["internal"] == 3


async def test_duplicate_id_is_refused_and_the_original_unaffected(make_server, connect: Connect):
    """A second request with an in-flight id gets duplicate_id; the first still gets its one reply."""
    client, ws = await make_server()
    release = asyncio.Event()
    runs = []

    @ws.handler("hold")
    async def hold(message, socket):
        runs.append(message.data)
        await release.wait()
        return message.data

    peer = await connect(client)
    await peer.send({"event": "hold", "id": 1, "data": "original"})
    await peer.send({"event": "hold", "id": 1, "data": "duplicate"})
    refused = await peer.recv()
    assert (refused["id"], refused["error"]["code"]) == (1, "duplicate_id")
    release.set()
    frames = await frames_until(peer, "fence")
    assert frames[:-1] == [{"event": "hold", "id": 1, "data": "original"}]
    assert runs == ["original"]
    # answered, the id is free again
    assert (await peer.request({"event": "hold", "id": 1, "data": "again"}))["data"] == "again"


# --- server → client calls ------------------------------------------------------


async def test_server_call_success_and_typed_client_error(make_server, connect: Connect):
    """socket.call resolves with the client's ws:result; a ws:error answer raises its typed error."""
    client, ws = await make_server()
    sockets = []

    @ws.handler("greet")
    async def greet(message, socket):
        sockets.append(socket)
        try:
            name = await socket.call("ask-name", {"why": "greeting"})
        except Forbidden as exc:
            return f"refused: {exc.message}"
        return f"Hello, {name}!"

    peer = await connect(client)
    await peer.send({"event": "greet", "id": 1})
    asked = await peer.recv()
    assert asked["event"] == "ask-name"
    assert asked["data"] == {"why": "greeting"}
    assert "id" not in asked  # `call`, never `id`: it cannot be taken for a reply
    await peer.send({"event": "ws:result", "call": asked["call"], "data": "Ada"})
    assert (await peer.recv())["data"] == "Hello, Ada!"

    await peer.send({"event": "greet", "id": 2})
    asked_again = await peer.recv()
    assert asked_again["call"] != asked["call"]
    await peer.send(
        {
            "event": "ws:error",
            "call": asked_again["call"],
            "error": {"code": "forbidden", "message": "not telling"},
        }
    )
    assert (await peer.recv())["data"] == "refused: not telling"
    assert sockets[0].pending_calls == 0


async def test_server_call_times_out_with_a_typed_error(make_server, connect: Connect):
    """No answer within call_timeout raises Timeout; the pending call is removed, a late answer dropped."""
    client, ws = await make_server(call_timeout=0.05)
    outcome: list[Any] = []

    @ws.handler("ask")
    async def ask(message, socket):
        try:
            await socket.call("ignored")  # the configured default timeout
        except Timeout as exc:
            outcome.append((exc.code.value, socket.pending_calls))
        try:
            await socket.call("ignored", timeout=0.01)  # an explicit one
        except Timeout:
            outcome.append("explicit")
        return "done"

    peer = await connect(client)
    await peer.send({"event": "ask", "id": 1})
    first = await peer.recv()
    second = await peer.recv()
    assert (await peer.recv())["data"] == "done"
    assert outcome == [("timeout", 0), "explicit"]
    dropped = ws.stats.dropped
    await peer.send({"event": "ws:result", "call": first["call"], "data": "late"})
    await peer.send({"event": "ws:result", "call": second["call"], "data": "late"})
    await frames_until(peer, "fence")
    assert ws.stats.dropped == dropped + 2


async def test_server_call_to_a_client_that_leaves(make_server, connect: Connect):
    """A call pending when the socket closes fails with ConnectionLost; nothing stays pending."""
    client, ws = await make_server()
    sockets = []
    ws.handler("hello")(lambda message, socket: sockets.append(socket))

    peer = await connect(client)
    await peer.request({"event": "hello", "id": 1})
    # Called from outside the socket's own tasks (those are cancelled on close instead).
    call = asyncio.create_task(sockets[0].call("never-answered", timeout=0))  # 0: forever
    assert (await peer.recv())["event"] == "never-answered"
    assert sockets[0].pending_calls == 1
    await peer.close()
    try:
        await asyncio.wait_for(call, DEADLINE)
    except ConnectionLost:
        pass
    else:
        raise AssertionError("a call pending at close must raise ConnectionLost")
    assert sockets[0].pending_calls == 0
    try:
        await sockets[0].call("after-close")
    except ConnectionLost:
        pass
    else:
        raise AssertionError("a call on a closed socket must raise ConnectionLost")


async def test_server_call_answered_by_the_python_client(make_server):
    """Client.perform answers server calls (sync or async); an unperformed event is NotFound."""
    client, ws = await make_server()

    @ws.handler("greet")
    async def greet(message, socket):
        name = await socket.call("ask-name")
        age = await socket.call("ask-age")
        try:
            await socket.call("ask-nothing")
        except Exception as exc:  # the typed error the client answered with
            return f"{name} {age} {type(exc).__name__}"

    async def age(data):
        return 36

    async with Client(str(client.make_url("/ws"))) as c:
        c.perform("ask-name", lambda data: "Ada")
        c.perform("ask-age", age)
        assert await c.call("greet") == "Ada 36 NotFound"
