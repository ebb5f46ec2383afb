"""Live data values over real sockets: a socket that asked x:get:y receives later unscoped x:set:y."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web

from monument_ws import EventBus
from monument_ws.client import Client
from tests.conftest import Connect, Peer, eventually, frames_until, welcomed


def clock_app(bus: EventBus, live: bool | None = None) -> web.Application:
    """A provider ``data:get:clock`` (0 until set), and an HTTP route that sets it for everyone."""
    now = {"t": 0}

    @bus.on("data:get:clock", live=live)
    async def clock(event: str, **_: Any) -> Any:
        return now["t"]

    async def tick(request: web.Request) -> web.Response:
        now["t"] = int(request.query["t"])
        await bus.emit("data:set:clock", now["t"])  # unscoped: names no request
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/tick", tick)
    return app


async def pushes_of(peer: Peer, event: str, fence: Any) -> list[Any]:
    """The data of every push (no id) of ``event`` the peer got before the ping ``fence``."""
    return [
        f["data"] for f in await frames_until(peer, fence) if f["event"] == event and "id" not in f
    ]


async def pushes(peer: Peer, fence: Any) -> list[Any]:
    """The data of every data:set:clock push the peer got before the ping ``fence``."""
    return await pushes_of(peer, "data:set:clock", fence)


async def test_off_by_default_no_later_deliveries(make_server, connect: Connect, bus):
    """Without live_data (and no live= choice), asking once answers once: later sets are not pushed."""
    client, ws = await make_server(clock_app(bus))
    peer = await connect(client)
    assert (await peer.request({"event": "data:get:clock", "id": 1}))["data"] == 0
    await client.post("/tick?t=5")
    assert await pushes(peer, "f") == []
    assert len(ws.live) == 0


async def test_live_set_reaches_every_watcher_once(make_server, connect: Connect, bus):
    """live_data on: an HTTP handler's unscoped set reaches every watcher, once each, even after
    asking twice; a request with data does not watch."""
    client, ws = await make_server(clock_app(bus), live_data=True)
    alice, bob, carol = await connect(client), await connect(client), await connect(client)
    for peer in (alice, bob):
        assert (await peer.request({"event": "data:get:clock", "id": 1}))["data"] == 0
        # asking twice keeps one watch: no doubled pushes
        assert (await peer.request({"event": "data:get:clock", "id": 2}))["data"] == 0
    await carol.request({"event": "data:get:clock", "id": 1, "data": {"tz": "utc"}})
    assert len(ws.live) == 2
    await client.post("/tick?t=7")
    assert await pushes(alice, "a") == [7]
    assert await pushes(bob, "b") == [7]
    assert await pushes(carol, "c") == []


async def test_scoped_answers_never_reach_watchers(make_server, connect: Connect, bus: EventBus):
    """A provider answering one socket's request with a scoped x:set:y (``request=``) reaches
    that socket only -- whether it asked with data or without -- never the watchers."""

    @bus.on("data:get:weather")
    async def weather(event: str, *, request: Any, data: Any, **_: Any) -> None:
        await bus.emit("data:set:weather", f"for {data}", request=request)

    client, ws = await make_server(live_data=True)
    alice, carol, dave = await connect(client), await connect(client), await connect(client)
    assert (await alice.request({"event": "data:get:weather", "id": 1}))["data"] == "for None"
    scoped = await carol.request({"event": "data:get:weather", "id": 1, "data": "paris"})
    assert scoped == {"event": "data:set:weather", "id": 1, "data": "for paris"}
    assert (await dave.request({"event": "data:get:weather", "id": 1}))["data"] == "for None"
    assert len(ws.live) == 2  # alice and dave
    for peer, fence in ((alice, "a"), (carol, "c"), (dave, "d")):
        assert [f for f in await frames_until(peer, fence) if "id" not in f] == []
    await bus.emit("data:set:weather", "sunny")
    for peer, fence, expected in ((alice, "a2", 1), (carol, "c2", 0), (dave, "d2", 1)):
        got = [f for f in await frames_until(peer, fence) if f["event"] == "data:set:weather"]
        assert got == [{"event": "data:set:weather", "data": "sunny"}] * expected


async def test_sets_from_other_places_arrive_in_emit_order(
    make_server, connect: Connect, bus: EventBus
):
    """A timer-like task and another socket's handler emit too: every value, in emit order."""
    app = clock_app(bus)
    client, ws = await make_server(app, live_data=True)

    async def bump(message: Any, socket: Any) -> None:
        await bus.emit("data:set:clock", message.data)

    ws.handler("bump")(bump)

    watcher, other = await connect(client), await connect(client)
    await watcher.request({"event": "data:get:clock", "id": 1})
    for t in range(1, 4):
        await bus.emit("data:set:clock", t)
    await other.request({"event": "bump", "id": 1, "data": 4})
    assert await pushes(watcher, "f") == [1, 2, 3, 4]
    assert await pushes(other, "g") == []


async def test_provider_choice_overrides_the_setting(make_server, connect: Connect, bus):
    """live=True watches with the setting off; live=False never watches with it on."""
    bus.on("data:get:on", lambda event, **_: "on", live=True)
    bus.on("data:get:off", lambda event, **_: "off", live=False)
    client, ws = await make_server(live_data=False)
    peer = await connect(client)
    await peer.request({"event": "data:get:on", "id": 1})
    await peer.request({"event": "data:get:off", "id": 2})
    assert len(ws.live) == 1
    await bus.emit("data:set:on", 1)
    await bus.emit("data:set:off", 2)
    got = [(f["event"], f["data"]) for f in await frames_until(peer, "f") if "id" not in f]
    assert got == [("data:set:on", 1)]


async def test_unwatch_stops_deliveries(make_server, connect: Connect, bus):
    """ws:unwatch ends the watch (its reply says one was there); asking again starts it again."""
    client, ws = await make_server(clock_app(bus), live_data=True)
    peer = await connect(client)
    await peer.request({"event": "data:get:clock", "id": 1})
    reply = await peer.request(
        {"event": "ws:unwatch", "id": 2, "data": {"event": "data:get:clock"}}
    )
    assert reply == {"event": "ws:unwatch", "id": 2, "data": {"watched": True}}
    assert len(ws.live) == 0
    await bus.emit("data:set:clock", 1)
    assert await pushes(peer, "f") == []
    again = await peer.request(
        {"event": "ws:unwatch", "id": 3, "data": {"event": "data:get:clock"}}
    )
    assert again["data"] == {"watched": False}
    await peer.request({"event": "data:get:clock", "id": 4})
    await bus.emit("data:set:clock", 2)
    assert await pushes(peer, "g") == [2]


async def test_bad_unwatch_gets_an_error_frame(make_server, connect: Connect, bus):
    """ws:unwatch without a data event name is answered with bad_frame; the socket stays open."""
    client, _ = await make_server(clock_app(bus), live_data=True)
    peer = await connect(client)
    for i, data in enumerate([None, "data:get:clock", {"event": 3}, {"event": "news"}]):
        answer = await peer.request({"event": "ws:unwatch", "id": i, "data": data})
        assert answer["event"] == "ws:error"
        assert answer["error"]["code"] == "bad_frame"
    assert (await peer.request({"event": "data:get:clock", "id": "ok"}))["data"] == 0


async def test_cap_per_socket_is_an_error_frame(make_server, connect: Connect, bus):
    """A socket watching max_live_values events gets rate_limited for one more; the others are
    still pushed, and after an unwatch the next one is accepted."""
    for name in "abc":
        bus.on(f"data:get:{name}", lambda event, **_: event)
    client, ws = await make_server(live_data=True, max_live_values=2)
    peer = await connect(client)
    await peer.request({"event": "data:get:a", "id": 1})
    await peer.request({"event": "data:get:b", "id": 2})
    refused = await peer.request({"event": "data:get:c", "id": 3})
    assert refused["event"] == "ws:error"
    assert refused["error"]["code"] == "rate_limited"
    assert len(ws.live) == 2
    # asking a watched one again is no new watch, so it is still answered
    assert (await peer.request({"event": "data:get:a", "id": 4}))["data"] == "data:get:a"
    await peer.request({"event": "ws:unwatch", "id": 5, "data": {"event": "data:get:a"}})
    assert (await peer.request({"event": "data:get:c", "id": 6}))["data"] == "data:get:c"


def test_live_choice_is_for_data_events_only() -> None:
    """live= on an event that is not x:get:y is a mistake, said at once."""
    bus = EventBus("t")
    with pytest.raises(ValueError, match="data events"):
        bus.on("news", lambda event, **_: None, live=True)
    assert bus.live("data:get:x") is None
    bus.on("data:get:x", live=False)
    assert bus.live("data:get:x") is False


async def test_event_without_provider_leaves_no_watch(make_server, connect: Connect, bus):
    """not_found and timeouts leave nothing in the registry."""
    bus.on("data:get:never", lambda event, **_: None)
    client, ws = await make_server(live_data=True, data_timeout=0.2)
    peer = await connect(client)
    assert (await peer.request({"event": "data:get:nothing", "id": 1}))["error"]["code"] == (
        "not_found"
    )
    assert (await peer.request({"event": "data:get:never", "id": 2}))["error"]["code"] == (
        "timeout"
    )
    assert len(ws.live) == 0


async def test_missed_value_between_answer_and_reply_follows_the_reply(
    make_server, connect: Connect, bus: EventBus
):
    """A provider answers from another task; an unscoped set then comes before the reply is
    queued: the client gets the reply, then that newer value, and nothing twice."""
    requests: list[Any] = []

    @bus.on("data:get:clock")
    async def clock(event: str, *, request: Any, **_: Any) -> None:
        requests.append(request)

    client, _ws = await make_server(live_data=True)
    peer = await connect(client)
    await peer.send({"event": "data:get:clock", "id": 1})
    await eventually(lambda: bool(requests), "the request waiting")
    # the scoped answer and a later unscoped set, with no chance for the socket's task between
    await bus.emit("data:set:clock", "answer", request=requests[0])
    await bus.emit("data:set:clock", "newer")
    frames = [f for f in await frames_until(peer, "f") if f["event"] == "data:set:clock"]
    assert frames == [
        {"event": "data:set:clock", "id": 1, "data": "answer"},
        {"event": "data:set:clock", "data": "newer"},
    ]
    await bus.emit("data:set:clock", "later")
    assert await pushes(peer, "g") == ["later"]


async def test_unscoped_answer_is_not_pushed_again(make_server, connect: Connect, bus):
    """An unscoped set that answers the waiting request is its reply, not also a push."""
    bus.on("data:get:clock", lambda event, **_: None)
    client, _ws = await make_server(live_data=True)
    peer = await connect(client)
    await peer.send({"event": "data:get:clock", "id": 1})
    await eventually(lambda: bus.pending() == 1, "the request waiting")
    await bus.emit("data:set:clock", "first")
    await eventually(lambda: bus.pending() == 0, "the request answered")
    await bus.emit("data:set:clock", "second")
    frames = [f for f in await frames_until(peer, "f") if f["event"] == "data:set:clock"]
    assert frames == [
        {"event": "data:set:clock", "id": 1, "data": "first"},
        {"event": "data:set:clock", "data": "second"},
    ]


async def test_a_thousand_sockets_come_and_go_and_leave_nothing(make_server, bus):
    """1,000 sockets watch (bounded by max_live_values each while open) and close, some after an
    unwatch: the registry is empty afterwards and a later set goes nowhere."""
    for name in "abc":
        bus.on(f"data:get:{name}", lambda event, **_: 0)
    client, ws = await make_server(live_data=True, max_live_values=2, heartbeat=0)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = client.make_url("/ws")
    try:
        for batch in range(10):
            peers = [await welcomed(await session.ws_connect(url)) for _ in range(100)]
            for peer in peers:
                for i, name in enumerate("abc"):
                    await peer.send({"event": f"data:get:{name}", "id": i})
            for peer in peers:
                answers = [await peer.recv() for _ in range(3)]
                assert sorted(a["event"] for a in answers) == [
                    "data:set:a",
                    "data:set:b",
                    "ws:error",
                ]
            assert len(ws.live) == 200  # two per socket, the cap
            assert ws.live.sockets == 100
            await bus.emit("data:set:a", batch)
            for peer in peers:
                assert (await peer.recv()) == {"event": "data:set:a", "data": batch}
            for n, peer in enumerate(peers):
                if n % 2:
                    await peer.send({"event": "ws:unwatch", "data": {"event": "data:get:a"}})
                await peer.close()
            await eventually(lambda: len(ws.live) == 0, "every watch forgotten")
        assert ws.live.sockets == 0
        assert ws.live._by_event == {}
        await bus.emit("data:set:a", "nobody")
    finally:
        await session.close()


async def test_python_client_receives_and_unwatches(make_server, bus: EventBus):
    """The Python client gets live pushes through on() and ends them with unwatch()."""
    client, ws = await make_server(clock_app(bus), live_data=True)
    got: list[Any] = []
    async with Client(str(client.make_url("/ws"))) as c:
        c.on("data:set:clock", got.append)
        assert await c.call("data:get:clock") == 0
        await bus.emit("data:set:clock", 1)
        await eventually(lambda: got == [1], "the live push")
        assert await c.unwatch("data:get:clock") is True
        assert await c.unwatch("data:get:clock") is False
        await bus.emit("data:set:clock", 2)
        await c.call("ws:ping")  # answered after anything queued before it
        assert got == [1]
        assert len(ws.live) == 0


async def test_a_watcher_that_does_not_keep_up_is_closed_not_buffered(
    make_server, connect: Connect, bus
):
    """Pushes go through the socket's bounded send buffer without waiting: a burst the client
    cannot take closes it with 4008 (the emitter is never held up) and its watch goes."""
    bus.on("data:get:big", lambda event, **_: "", live=True)
    client, ws = await make_server(send_buffer_frames=10)
    slow, fine = await connect(client), await connect(client)
    await slow.request({"event": "data:get:big", "id": 1})
    for _ in range(400):  # nothing in emit awaits: the buffer gets no chance to drain
        await bus.emit("data:set:big", "x" * 50_000)
    assert await slow.closed() == 4008
    await eventually(lambda: len(ws.live) == 0, "the slow watcher forgotten")
    await fine.request({"event": "data:get:big", "id": 1})
    await bus.emit("data:set:big", "small")
    assert await pushes_of(fine, "data:set:big", "f") == ["small"]


async def test_a_value_json_cannot_hold_is_logged_not_raised_to_the_emitter(
    make_server, connect: Connect, bus, caplog: pytest.LogCaptureFixture
):
    """An app emitting a live x:set:y JSON cannot encode gets a log line; the emit goes on to
    its receivers and the watcher keeps its watch."""
    received: list[Any] = []
    client, ws = await make_server(clock_app(bus), live_data=True)
    bus.on("data:set:clock", lambda event, *, data, **_: received.append(data))
    peer = await connect(client)
    await peer.request({"event": "data:get:clock", "id": 1})
    odd = object()
    await bus.emit("data:set:clock", odd)
    assert received == [odd]
    assert "a live-value tap failed on data:set:clock" in caplog.text
    await bus.emit("data:set:clock", 3)
    assert await pushes(peer, "f") == [3]
    assert len(ws.live) == 1
