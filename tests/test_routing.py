"""The protocol's routing steps (docs/protocol.md) over real sockets: data events, handlers, passthrough, unknown."""

import asyncio
import gc
import weakref

from aiohttp import web

from monument_ws import Forbidden, signals
from tests.conftest import Connect, Ticker, eventually


def greeting_app(bus):
    """One data provider serving both an HTTP route and the socket data event."""
    calls = []

    @bus.on("data:get:greeting")
    async def provide(event, *, data, request, **_):
        calls.append(data)
        return {"hello": (data or {}).get("name", "world")}

    async def http_greeting(request: web.Request) -> web.Response:
        return web.json_response(await bus.ask("data:get:greeting"))

    app = web.Application()
    app.router.add_get("/api/greeting", http_greeting)
    return app, calls


async def test_http_route_and_socket_share_one_provider(make_server, connect: Connect, bus):
    """The same provider answers GET /api/greeting and data:get:greeting, counted via the bus."""
    app, calls = greeting_app(bus)
    client, _ = await make_server(app)
    response = await client.get("/api/greeting")
    over_http = await response.json()
    peer = await connect(client)
    over_socket = await peer.request({"event": "data:get:greeting", "id": 1})
    assert over_socket == {"event": "data:set:greeting", "id": 1, "data": over_http}
    assert len(calls) == 2


async def test_data_event_without_id_is_answered_like_monument(make_server, connect: Connect, bus):
    """A data event without an id still gets its :set: reply (monument clients send no ids)."""
    app, _ = greeting_app(bus)
    client, _ = await make_server(app)
    peer = await connect(client)
    await peer.send({"event": "data:get:greeting"})
    assert await peer.recv() == {"event": "data:set:greeting", "data": {"hello": "world"}}


async def test_concurrent_requests_with_different_data_get_their_own_answers(
    make_server, connect: Connect, bus
):
    """Two sockets asking with different data at once each get their own answer."""
    release = asyncio.Event()

    @bus.on("data:get:user")
    async def provide(event, *, data, request, **_):
        await release.wait()
        await bus.emit("data:set:user", {"name": data["name"]}, request=request)

    client, _ = await make_server()
    alice, bob = await connect(client), await connect(client)
    await alice.send({"event": "data:get:user", "id": 1, "data": {"name": "alice"}})
    await bob.send({"event": "data:get:user", "id": 1, "data": {"name": "bob"}})
    await eventually(lambda: bus.pending() == 2, "both requests waiting")
    release.set()
    assert (await alice.recv())["data"] == {"name": "alice"}
    assert (await bob.recv())["data"] == {"name": "bob"}


async def test_unscoped_set_answers_only_data_less_requests(make_server, connect: Connect, bus):
    """An unscoped :set: reaches the request without data, never the one with parameters."""
    bus.on("data:get:news", lambda event, **_: None)
    client, _ = await make_server(data_timeout=0.5)
    everyone, private = await connect(client), await connect(client)
    await everyone.send({"event": "data:get:news", "id": "a"})
    await private.send({"event": "data:get:news", "id": "b", "data": {"user": 7}})
    await eventually(lambda: bus.pending() == 2, "both requests waiting")
    await bus.emit("data:set:news", ["headline"])
    assert await everyone.recv() == {"event": "data:set:news", "id": "a", "data": ["headline"]}
    answer = await private.recv()
    assert answer["event"] == "ws:error"
    assert answer["id"] == "b"
    assert answer["error"]["code"] == "timeout"
    assert bus.pending() == 0


async def test_data_event_without_provider_is_not_found_at_once(make_server, connect: Connect):
    """No receiver at all: not_found immediately (no wait for the timeout)."""
    client, _ = await make_server(data_timeout=1000)
    peer = await connect(client)
    answer = await peer.request({"event": "data:get:nothing", "id": 3})
    assert answer["error"]["code"] == "not_found"
    assert answer["id"] == 3


async def test_closed_socket_never_gets_an_answer(make_server, connect: Connect, bus):
    """A socket that closes removes its pending wait; a later :set: goes nowhere."""
    bus.on("data:get:slow", lambda event, **_: None)
    client, ws = await make_server()
    peer = await connect(client)
    await peer.send({"event": "data:get:slow", "id": 1})
    await eventually(lambda: bus.pending() == 1, "the request waiting")
    await peer.close()
    await eventually(lambda: bus.pending() == 0 and len(ws.hub) == 0, "the wait removed")
    await bus.emit("data:set:slow", "late")  # must not raise or reach anyone
    assert ws.stats.frames_out == 1  # only the welcome


async def test_no_leaks_after_1000_requests_and_100_closed_sockets(
    make_server, connect: Connect, bus
):
    """Receiver lists return to their size, no wait remains, closed sockets are collectable."""

    @bus.on("data:get:item")
    async def provide(event, *, data, request, **_):
        if isinstance(data, dict):
            await bus.emit("data:set:item", data, request=request)
        else:
            return {"n": data}

    bus.on("data:get:never", lambda event, **_: None)
    refs: list[weakref.ref[object]] = []
    bus.on(signals.SOCKET_CONNECTED, lambda event, *, socket, **_: refs.append(weakref.ref(socket)))
    client, ws = await make_server(data_timeout=60)
    before = {name: len(sig.receivers) for name, sig in bus.signals().items()}

    peers = [await connect(client) for _ in range(100)]
    for i in range(1000):
        peer = peers[i % 100]
        data = {"scoped": True, "i": i} if i % 2 else i
        await peer.send({"event": "data:get:item", "id": i, "data": data})
    for peer in peers:
        await peer.send({"event": "data:get:never", "id": "stuck"})  # waits forever
    answered = 0
    for peer in peers:
        for _ in range(10):
            frame = await peer.recv()
            assert frame["event"] == "data:set:item"
            answered += 1
    assert answered == 1000
    await eventually(lambda: bus.pending() == 100, "one stuck request per socket")
    for peer in peers:
        await peer.close()
    await eventually(lambda: len(ws.hub) == 0 and bus.pending() == 0, "every socket gone")

    after = {name: len(sig.receivers) for name, sig in bus.signals().items()}
    assert after == before
    gc.collect()
    assert len(refs) == 100
    assert [r for r in refs if r() is not None] == []


async def test_handler_return_value_is_the_reply(make_server, connect: Connect):
    """A handler registered for an event answers with its return value; sync handlers too."""
    client, ws = await make_server()
    ws.handler("add")(lambda message, socket: sum(message.data))

    @ws.handler("whoami")
    async def whoami(message, socket):
        return socket.client_id

    peer = await connect(client)
    assert (await peer.request({"event": "add", "id": 1, "data": [1, 2]}))["data"] == 3
    assert (await peer.request({"event": "whoami", "id": 2}))["data"] == peer.client_id


async def test_handler_raising_a_monument_error_sends_its_code(make_server, connect: Connect):
    """A MonumentWSError subclass becomes an error frame with its code and message."""
    client, ws = await make_server()

    @ws.handler("secret")
    async def secret(message, socket):
        raise Forbidden("members only")

    peer = await connect(client)
    answer = await peer.request({"event": "secret", "id": 1})
    assert answer == {
        "event": "ws:error",
        "id": 1,
        "error": {"code": "forbidden", "message": "members only"},
    }


async def test_passthrough_carries_message_and_socket(make_server, connect: Connect, bus):
    """Passthrough receivers get the whole message (extra keys too) and the socket."""
    seen = []

    @bus.on("login")
    async def login(event, *, message, socket, **_):
        seen.append((message, socket.client_id))
        return {"ok": message["credentialsObj"]["user"]}

    bus.on("login", lambda event, **_: "second receiver: not the reply")
    client, _ = await make_server()
    peer = await connect(client)
    frame = {"event": "login", "id": 1, "credentialsObj": {"user": "ann"}}
    assert (await peer.request(frame))["data"] == {"ok": "ann"}
    assert seen == [(frame, peer.client_id)]


async def test_passthrough_receiver_can_reply_itself_exactly_once(
    make_server, connect: Connect, bus
):
    """socket.reply() answers the request; the automatic reply is then skipped."""

    @bus.on("early")
    async def early(event, *, message, socket, **_):
        await socket.reply(message, "from reply()")
        return "ignored"

    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    await peer.send({"event": "early", "id": 1})
    assert (await peer.recv())["data"] == "from reply()"
    assert (await peer.request({"event": "echo", "id": 2, "data": "next"}))["data"] == "next"


async def test_unknown_event_not_found_with_id_and_counted_without(make_server, connect: Connect):
    """Step 5: with an id not_found; without an id the frame is dropped and counted."""
    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    await peer.send({"event": "nobody-listens"})
    answer = await peer.request({"event": "nobody-listens", "id": 9})
    assert answer["error"]["code"] == "not_found"
    assert ws.stats.dropped == 1


async def test_data_mode_only_answers_data_events(make_server, connect: Connect, bus):
    """webSocket "data": handlers and passthrough are off; ws: commands still work."""
    bus.on("data:get:x", lambda event, **_: 1)
    bus.on("chat", lambda event, **_: "passthrough")
    client, ws = await make_server(websocket="data")
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    assert (await peer.request({"event": "data:get:x", "id": 1}))["data"] == 1
    assert (await peer.request({"event": "echo", "id": 2}))["error"]["code"] == "not_found"
    assert (await peer.request({"event": "chat", "id": 3}))["error"]["code"] == "not_found"
    assert (await peer.request({"event": "ws:ping", "id": 4})) == {
        "event": "ws:ping",
        "id": 4,
        "data": {},
    }


async def test_passthrough_mode_sends_get_events_down_passthrough(
    make_server, connect: Connect, bus
):
    """webSocket "passthrough": data:get:x reaches receivers with message/socket, reply keeps the event."""
    got = []

    @bus.on("data:get:x")
    async def receiver(event, *, message, socket, **kw):
        got.append(kw.get("request"))
        return "via passthrough"

    client, _ = await make_server(websocket="passthrough")
    peer = await connect(client)
    answer = await peer.request({"event": "data:get:x", "id": 1})
    assert answer == {"event": "data:get:x", "id": 1, "data": "via passthrough"}
    assert got == [None]  # no DataRequest: the data path was not taken


async def test_reserved_prefixes_cannot_be_triggered(make_server, connect: Connect, bus):
    """route:, server:, error:, client. events are forbidden to sockets; receivers never run."""
    fired = []
    names = ["route:/:get", "server:started", "error:404", "client.connected"]
    for name in names:
        bus.on(name, lambda event, **_: fired.append(event))
    client, _ = await make_server()
    peer = await connect(client)
    for i, name in enumerate(names):
        answer = await peer.request({"event": name, "id": i})
        assert answer["error"]["code"] == "forbidden", name
    await peer.send({"event": "route:/:get"})  # without id: silently dropped
    assert (await peer.request({"event": "ws:ping", "id": "p"}))["event"] == "ws:ping"
    assert fired == []


async def test_socket_events_allow_list(make_server, connect: Connect, bus):
    """Only events matching socket_events patterns reach the bus."""
    fired = []

    def record(event, **_):
        fired.append(event)
        return "ok"

    bus.on("chat:send", record)
    bus.on("admin:wipe", record)
    client, _ = await make_server(socket_events=["chat:*"])
    peer = await connect(client)
    assert (await peer.request({"event": "chat:send", "id": 1}))["data"] == "ok"
    assert (await peer.request({"event": "admin:wipe", "id": 2}))["error"]["code"] == "forbidden"
    assert fired == ["chat:send"]


async def test_cancel_stops_a_running_handler(make_server, connect: Connect):
    """ws:cancel ends the request with a cancelled error and runs the handler's cleanup."""
    cleaned = asyncio.Event()
    started = asyncio.Event()
    client, ws = await make_server()

    @ws.handler("wait")
    async def wait(message, socket):
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    peer = await connect(client)
    await peer.send({"event": "wait", "id": 5})
    await asyncio.wait_for(started.wait(), 10)
    await peer.send({"event": "ws:cancel", "data": {"id": 5}})
    answer = await peer.recv()
    assert answer["event"] == "ws:error"
    assert answer["id"] == 5
    assert answer["error"]["code"] == "cancelled"
    await asyncio.wait_for(cleaned.wait(), 10)
    # the id is free again
    ws.handler("echo")(lambda message, socket: message.data)
    assert (await peer.request({"event": "echo", "id": 5, "data": 1}))["data"] == 1


async def test_closing_the_socket_closes_running_generators(make_server, connect: Connect):
    """When the socket closes, a streaming handler gets aclose() and its slot is freed."""
    client, ws = await make_server()
    ticker = Ticker(ws)

    peer = await connect(client)
    await peer.send({"event": "ticks", "id": 1})
    first = await peer.recv()
    assert first == {"event": "ticks", "id": 1, "data": 0, "more": True}
    await peer.close()
    await asyncio.wait_for(ticker.closed.wait(), 10)
    await eventually(lambda: len(ws.hub) == 0, "socket unregistered")
    assert (ticker.sockets[0].running, ticker.sockets[0].waiting) == (0, 0)  # its slot is released


async def test_requests_beyond_the_limits_wait_then_get_rate_limited(make_server, connect: Connect):
    """max_inflight run, max_waiting wait in order, one more gets rate_limited."""
    release = asyncio.Event()
    client, ws = await make_server(max_inflight=2, max_waiting=1)
    started = []

    @ws.handler("hold")
    async def hold(message, socket):
        started.append(message.id)
        await release.wait()
        return message.id

    peer = await connect(client)
    for i in range(4):
        await peer.send({"event": "hold", "id": i})
    refused = await peer.recv()
    assert refused["id"] == 3
    assert refused["error"]["code"] == "rate_limited"
    assert started == [0, 1]
    release.set()
    assert sorted([(await peer.recv())["data"] for _ in range(3)]) == [0, 1, 2]
    assert started == [0, 1, 2]


async def test_cancelling_a_queued_request(make_server, connect: Connect):
    """A request cancelled while it waits for a slot never runs."""
    release = asyncio.Event()
    client, ws = await make_server(max_inflight=1)
    started = []

    @ws.handler("hold")
    async def hold(message, socket):
        started.append(message.id)
        await release.wait()
        return message.id

    peer = await connect(client)
    await peer.send({"event": "hold", "id": "a"})
    await peer.send({"event": "hold", "id": "b"})
    await peer.send({"event": "ws:cancel", "data": {"id": "b"}})
    cancelled = await peer.recv()
    assert cancelled["id"] == "b"
    assert cancelled["error"]["code"] == "cancelled"
    release.set()
    assert (await peer.recv())["data"] == "a"
    assert (await peer.request({"event": "ws:ping", "id": "p"}))["event"] == "ws:ping"
    assert started == ["a"]


async def test_a_waiting_request_keeps_the_route_it_was_given(make_server, connect: Connect):
    """A request that waits for a slot runs the route decided when it arrived: if its handler
    is removed meanwhile (a hot reload), it gets not_found, and is never emitted on the bus."""
    release = asyncio.Event()
    client, ws = await make_server(max_inflight=1)
    emitted: list[object] = []

    @ws.handler("hold")
    async def hold(message, socket):
        await release.wait()
        return "held"

    ws.handler("gone")(lambda message, socket: "never")
    peer = await connect(client)
    await peer.send({"event": "hold", "id": 1})
    await peer.send({"event": "gone", "id": 2})
    await eventually(lambda: any(s.waiting for s in ws.hub), "the second request waiting")
    ws.router.remove("gone")
    ws.bus.on("gone", lambda event, **kwargs: emitted.append(kwargs))
    release.set()
    assert await peer.recv() == {"event": "hold", "id": 1, "data": "held"}
    refused = await peer.recv()
    assert (refused["id"], refused["error"]["code"]) == (2, "not_found")
    assert emitted == []


async def test_slow_consumer_is_closed_with_4008(make_server, connect: Connect):
    """Overflowing a socket's send buffer closes it with 4008 instead of growing memory."""
    client, ws = await make_server(send_buffer_frames=10)

    @ws.handler("flood")
    async def flood(message, socket):
        # Enough bytes to fill the kernel's socket buffers, then the transport's,
        # then the 10-frame queue: the client is not reading.
        chunk = "x" * 50_000
        for _ in range(400):
            if not socket.send_nowait("item", chunk):
                break

    peer = await connect(client)
    await peer.send({"event": "flood"})
    assert await peer.closed() == 4008
    assert ws.stats.slow_consumers == 1


async def test_awaited_send_applies_backpressure(make_server, connect: Connect):
    """await socket.send() waits for room instead of overflowing: every frame arrives."""
    client, ws = await make_server(send_buffer_frames=10)

    @ws.handler("burst")
    async def burst(message, socket):
        for i in range(200):
            await socket.send("item", i)
        return "done"

    peer = await connect(client)
    await peer.send({"event": "burst", "id": 1})
    received = [(await peer.recv())["data"] for _ in range(201)]
    assert received == [*range(200), "done"]
    assert ws.stats.slow_consumers == 0
