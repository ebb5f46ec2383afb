"""Plain-function handlers over real sockets: run inline when a slot is free, like async ones otherwise.

A handler that is neither a coroutine function nor an async generator function
runs in the reader's step, without a task and without being admitted to the
socket's request table, when a request may start at once (a slot free, nothing
waiting, its id not in flight, not draining). Whatever it returns or raises is
answered as an ``async def`` handler's would be; an awaitable, an async
generator or a typed yield goes on in a task. Otherwise (duplicate id, a full
table, a drain) the request takes the ordinary path.

Inside the handler, ``socket.running`` tells the two paths apart: 0 inline (the
request was never admitted), 1 in a task.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

from monument_ws import Forbidden, NotFound
from monument_ws.connection.stats import OUT_REPLY
from monument_ws.yields import broadcast, error
from tests.conftest import DEADLINE, Connect, eventually, frames_until

#: Set by a plain handler in test_a_context_variable_set_inline_does_not_leak_to_the_next_request.
CURRENT_USER: contextvars.ContextVar[str] = contextvars.ContextVar("current_user")


def serve_slow_and_quick(ws: Any) -> tuple[asyncio.Event, list[Any]]:
    """``slow`` (async, answers "slow done" once the event is set) and ``quick`` (a plain
    function answering "quick done"); returns the event and the data ``quick`` ran with."""
    release = asyncio.Event()
    plain_calls: list[Any] = []

    async def slow(message: Any, socket: Any) -> str:
        await release.wait()
        return "slow done"

    def quick(message: Any, socket: Any) -> str:
        plain_calls.append(message.data)
        return "quick done"

    ws.handler("slow")(slow)
    ws.handler("quick")(quick)
    return release, plain_calls


def only_socket(ws: Any) -> Any:
    (socket,) = list(ws.hub)
    return socket


async def test_a_plain_handlers_value_is_the_reply_sent_inline_and_counted(
    make_server, connect: Connect
):
    """A plain handler answers with its return value without being admitted (running == 0);
    the reply and the handler route's latency are counted once per request."""
    client, ws = await make_server()
    running: list[int] = []

    @ws.handler("add")
    def add(message, socket):
        running.append(socket.running)
        return sum(message.data)

    peer = await connect(client)
    replies = ws.stats.frames_out_by[OUT_REPLY]
    assert await peer.request({"event": "add", "id": 1, "data": [1, 2]}) == {
        "event": "add",
        "id": 1,
        "data": 3,
    }
    assert await peer.request({"event": "add", "id": "two", "data": [4, 5, 6]}) == {
        "event": "add",
        "id": "two",
        "data": 15,
    }
    assert running == [0, 0]  # inline: never admitted to the socket's table
    assert ws.stats.latency["handler"].count == 2
    assert ws.stats.frames_out_by[OUT_REPLY] == replies + 2
    assert sum(ws.stats.errors.values()) == 0


async def test_a_plain_handler_without_id_runs_and_is_not_answered(make_server, connect: Connect):
    """A request without id to a plain handler runs it inline and gets no frame back."""
    client, ws = await make_server()
    seen: list[Any] = []

    @ws.handler("note")
    def note(message, socket):
        seen.append(message.data)
        return "ignored"

    peer = await connect(client)
    await peer.send({"event": "note", "data": "a"})
    await peer.send({"event": "note", "data": "b"})
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]
    assert seen == ["a", "b"]
    assert ws.stats.latency["handler"].count == 2


async def test_a_plain_handler_raising_gets_internal_and_the_socket_goes_on(
    make_server, connect: Connect, caplog
):
    """An ordinary exception becomes ``internal`` with a generic message, its traceback is
    logged on the server, and the same socket answers the next request."""
    client, ws = await make_server()

    @ws.handler("boom")
    def boom(message, socket):
        if message.data == "fail":
            raise ValueError("secret detail")
        return "fine"

    peer = await connect(client)
    with caplog.at_level(logging.ERROR, "monument_ws"):
        answer = await peer.request({"event": "boom", "id": 1, "data": "fail"})
    assert answer == {
        "event": "ws:error",
        "id": 1,
        "error": {"code": "internal", "message": "internal error"},
    }
    failures = [r for r in caplog.records if r.exc_info is not None]
    assert len(failures) == 1
    assert "handler for 'boom' failed" in failures[0].getMessage()
    assert isinstance(failures[0].exc_info[1], ValueError)
    assert "secret detail" not in str(answer)
    assert ws.stats.errors["internal"] == 1
    assert await peer.request({"event": "boom", "id": 2}) == {
        "event": "boom",
        "id": 2,
        "data": "fine",
    }
    assert ws.stats.latency["handler"].count == 2


async def test_a_plain_handler_raising_a_monument_error_sends_its_code(
    make_server, connect: Connect
):
    """A MonumentWSError subclass raised inline becomes an error frame with its code and message."""
    client, ws = await make_server()

    @ws.handler("secret")
    def secret(message, socket):
        if message.data == "missing":
            raise NotFound("no such thing")
        raise Forbidden("members only")

    peer = await connect(client)
    assert await peer.request({"event": "secret", "id": 1}) == {
        "event": "ws:error",
        "id": 1,
        "error": {"code": "forbidden", "message": "members only"},
    }
    assert await peer.request({"event": "secret", "id": 2, "data": "missing"}) == {
        "event": "ws:error",
        "id": 2,
        "error": {"code": "not_found", "message": "no such thing"},
    }
    assert (ws.stats.errors["forbidden"], ws.stats.errors["not_found"]) == (1, 1)


async def test_a_failing_plain_handler_without_id_is_not_answered_like_an_async_one(
    make_server, connect: Connect
):
    """A request without id whose handler raises gets no frame, plain function or async def."""
    client, ws = await make_server()

    @ws.handler("async_boom")
    async def async_boom(message, socket):
        raise ValueError("async")

    @ws.handler("plain_boom")
    def plain_boom(message, socket):
        raise ValueError("plain")

    peer = await connect(client)
    await peer.send({"event": "async_boom"})
    await eventually(lambda: ws.stats.errors["internal"] == 1, "the async failure counted")
    await peer.send({"event": "plain_boom"})
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]
    assert ws.stats.errors["internal"] == 2


async def test_a_plain_handler_returning_a_coroutine_is_admitted_and_answered_with_its_value(
    make_server, connect: Connect
):
    """A returned coroutine goes on in a task: the request is admitted (its id is in flight,
    so a second request with it gets duplicate_id) and answered with the awaited value; the
    latency is observed once for it."""
    client, ws = await make_server()
    release = asyncio.Event()

    async def later(value: Any) -> Any:
        await release.wait()
        return {"later": value}

    ws.handler("later")(lambda message, socket: later(message.data))

    peer = await connect(client)
    socket = only_socket(ws)
    await peer.send({"event": "later", "id": 1, "data": "x"})
    await eventually(lambda: socket.running == 1, "the returned coroutine running as a request")
    duplicate = await peer.request({"event": "later", "id": 1, "data": "y"})
    assert (duplicate["id"], duplicate["error"]["code"]) == (1, "duplicate_id")
    assert "handler" not in ws.stats.latency or ws.stats.latency["handler"].count == 0
    release.set()
    assert await peer.recv() == {"event": "later", "id": 1, "data": {"later": "x"}}
    await eventually(lambda: socket.running == 0, "the slot freed")
    assert ws.stats.latency["handler"].count == 1
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]


async def test_a_plain_handler_returning_an_async_generator_streams_it(
    make_server, connect: Connect
):
    """A returned async generator is streamed: its items as chunks in order, then one end."""
    client, ws = await make_server()

    async def count(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    ws.handler("count")(lambda message, socket: count(message.data))

    peer = await connect(client)
    await peer.send({"event": "count", "id": "s", "data": 5})
    frames = [await peer.recv() for _ in range(6)]
    chunks = [{"event": "count", "id": "s", "data": i, "more": True} for i in range(5)]
    assert frames == [*chunks, {"event": "count", "id": "s", "end": True}]
    await eventually(lambda: only_socket(ws).running == 0, "the stream's slot freed")
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]


async def test_a_plain_handler_returning_a_broadcast_yield_pushes_to_everyone(
    make_server, connect: Connect
):
    """A returned BROADCAST yield reaches every socket, the sender included, and the request's
    reply is null, as for an async handler returning it."""
    client, ws = await make_server()
    ws.handler("shout")(lambda message, socket: broadcast({"said": message.data}))

    sender, other = await connect(client), await connect(client)
    await sender.send({"event": "shout", "id": 9, "data": "hi"})
    got = [await sender.recv(), await sender.recv()]
    push = {"event": "shout", "data": {"said": "hi"}}
    reply = {"event": "shout", "id": 9, "data": None}
    assert sorted(got, key=lambda f: "id" in f) == [push, reply]
    assert await other.recv() == push


async def test_a_plain_handler_returning_an_error_yield_ends_with_that_error(
    make_server, connect: Connect
):
    """A returned ERROR yield is the request's one final answer, with its code and message."""
    client, ws = await make_server()
    ws.handler("refuse")(lambda message, socket: error("forbidden", "not you"))

    peer = await connect(client)
    assert await peer.request({"event": "refuse", "id": 3}) == {
        "event": "ws:error",
        "id": 3,
        "error": {"code": "forbidden", "message": "not you"},
    }
    assert ws.stats.errors["forbidden"] == 1
    assert await frames_until(peer, "fence") == [{"event": "ws:ping", "id": "fence", "data": {}}]


async def test_a_plain_request_reusing_a_running_id_gets_duplicate_id(
    make_server, connect: Connect
):
    """While an async request with id 1 runs, a plain-handler request with id 1 is refused with
    duplicate_id without running; the first still gets its answer, and the id is free after."""
    client, ws = await make_server()
    release, plain_calls = serve_slow_and_quick(ws)
    peer = await connect(client)
    await peer.send({"event": "slow", "id": 1})
    await eventually(lambda: only_socket(ws).running == 1, "the slow request running")
    refused = await peer.request({"event": "quick", "id": 1, "data": "second"})
    assert refused == {
        "event": "ws:error",
        "id": 1,
        "error": {"code": "duplicate_id", "message": "a request with id 1 is still running"},
    }
    assert plain_calls == []
    release.set()
    assert await peer.recv() == {"event": "slow", "id": 1, "data": "slow done"}
    await eventually(lambda: only_socket(ws).running == 0, "the slow request ended")
    assert await peer.request({"event": "quick", "id": 1, "data": "third"}) == {
        "event": "quick",
        "id": 1,
        "data": "quick done",
    }
    assert plain_calls == ["third"]


async def test_a_plain_request_does_not_overtake_a_waiting_one(make_server, connect: Connect):
    """With max_inflight=1, a plain-handler request sent after an async one that waits for the
    slot waits too and runs after it, in a task, in arrival order."""
    client, ws = await make_server(max_inflight=1, max_waiting=4)
    release = asyncio.Event()
    ran: list[tuple[str, int]] = []

    @ws.handler("hold")
    async def hold(message, socket):
        ran.append((message.data, socket.running))
        await release.wait()
        return message.data

    @ws.handler("wait")
    async def wait(message, socket):
        ran.append((message.data, socket.running))
        return message.data

    @ws.handler("plain")
    def plain(message, socket):
        ran.append((message.data, socket.running))
        return message.data

    peer = await connect(client)
    socket = only_socket(ws)
    await peer.send({"event": "hold", "id": 1, "data": "first"})
    await peer.send({"event": "wait", "id": 2, "data": "second"})
    await peer.send({"event": "plain", "id": 3, "data": "third"})
    await eventually(lambda: socket.waiting == 2, "the second and third requests waiting")
    assert ran == [("first", 1)]
    release.set()
    answers = [await peer.recv() for _ in range(3)]
    assert [(a["id"], a["data"]) for a in answers] == [(1, "first"), (2, "second"), (3, "third")]
    assert ran == [("first", 1), ("second", 1), ("third", 1)]  # in order, each in its slot


async def test_a_context_variable_set_inline_does_not_leak_to_the_next_request(
    make_server, connect: Connect
):
    """Each inline call runs in a copy of the socket's context: a ContextVar a plain handler
    sets is unset again for the next plain or async request on the same socket."""
    client, ws = await make_server()

    @ws.handler("login")
    def login(message, socket):
        before = CURRENT_USER.get("nobody")
        CURRENT_USER.set(message.data)
        return [before, CURRENT_USER.get()]

    @ws.handler("whoami")
    async def whoami(message, socket):
        return CURRENT_USER.get("nobody")

    peer = await connect(client)
    first = await peer.request({"event": "login", "id": 1, "data": "alice"})
    assert first["data"] == ["nobody", "alice"]
    second = await peer.request({"event": "login", "id": 2, "data": "bob"})
    assert second["data"] == ["nobody", "bob"]
    assert (await peer.request({"event": "whoami", "id": 3}))["data"] == "nobody"
    assert CURRENT_USER.get("nobody") == "nobody"


async def test_a_plain_handler_returning_something_unserialisable_gets_internal(
    make_server, connect: Connect, caplog
):
    """A return value that cannot be encoded as JSON answers ``internal`` (logged), and the
    socket goes on answering."""
    client, ws = await make_server()

    @ws.handler("weird")
    def weird(message, socket):
        return object() if message.data == "object" else {"ok": True}

    peer = await connect(client)
    with caplog.at_level(logging.ERROR, "monument_ws"):
        answer = await peer.request({"event": "weird", "id": 1, "data": "object"})
    assert answer == {
        "event": "ws:error",
        "id": 1,
        "error": {"code": "internal", "message": "internal error"},
    }
    assert any(r.exc_info is not None for r in caplog.records)
    assert await peer.request({"event": "weird", "id": 2}) == {
        "event": "weird",
        "id": 2,
        "data": {"ok": True},
    }


async def test_a_plain_request_during_a_drain_gets_unavailable_without_running(
    make_server, connect: Connect
):
    """Once a drain stopped a socket taking requests, a plain-handler request on it gets
    unavailable and does not run; the request already running still gets its answer."""
    client, ws = await make_server(drain_period=0, drain_batch=10, drain_grace=DEADLINE)
    release, plain_calls = serve_slow_and_quick(ws)
    busy, idle = await connect(client), await connect(client)
    await busy.send({"event": "slow", "id": 1})
    await eventually(lambda: any(s.running for s in ws.hub), "the slow request running")
    drain = asyncio.get_running_loop().create_task(ws.on_shutdown(client.app))
    # One batch: every socket's drain starts in the same step, so once the idle one was closed
    # the busy one has stopped taking requests (and waits for its running one).
    assert await idle.closed() == 1001
    refused = await busy.request({"event": "quick", "id": 2})
    assert (refused["id"], refused["error"]["code"]) == (2, "unavailable")
    assert plain_calls == []
    release.set()
    assert await busy.recv() == {"event": "slow", "id": 1, "data": "slow done"}
    assert await busy.closed() == 1001
    await asyncio.wait_for(drain, DEADLINE)
    assert plain_calls == []


async def test_a_stray_cancelled_error_is_an_internal_error_whether_plain_or_async(
    make_server, connect: Connect, caplog
):
    """A handler that raises CancelledError without anyone cancelling its request still gets
    its one answer (internal), plain function or async def, and the socket stays open."""
    client, ws = await make_server()

    @ws.handler("plain_cancelled")
    def plain_cancelled(message, socket):
        raise asyncio.CancelledError

    @ws.handler("async_cancelled")
    async def async_cancelled(message, socket):
        await asyncio.sleep(0)
        raise asyncio.CancelledError

    peer = await connect(client)
    for n, event in enumerate(("plain_cancelled", "async_cancelled")):
        answer = await peer.request({"event": event, "id": n})
        assert answer["error"] == {"code": "internal", "message": "internal error"}, answer
    assert ws.stats.errors["internal"] == 2
    assert (await peer.request({"event": "ws:ping", "id": "alive"}))["event"] == "ws:ping"
