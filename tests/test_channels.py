"""Channels over real sockets: publish/subscribe, namespaces, history and recovery, fan-out."""

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import monument_ws
from monument_ws import protocol, signals
from monument_ws.brokers import MemoryBroker
from monument_ws.brokers.base import History
from monument_ws.client import Client
from tests.conftest import Connect, Peer, eventually, welcomed


async def subscribe(
    peer: Peer, channel: str, request_id: Any = "s", **extra: Any
) -> dict[str, Any]:
    answer = await peer.request(
        {"event": "ws:subscribe", "id": request_id, "data": {"channel": channel, **extra}}
    )
    assert answer["event"] == "ws:subscribe", answer
    data: dict[str, Any] = answer["data"]
    return data


async def test_subscribe_publish_unsubscribe(make_server, connect: Connect, bus):
    """Subscribers get {event, channel, data, offset}; after unsubscribe nothing more."""
    seen = []
    bus.on(signals.CHANNEL_SUBSCRIBED, lambda e, *, channel, **_: seen.append(("sub", channel)))
    bus.on(signals.CHANNEL_UNSUBSCRIBED, lambda e, *, channel, **_: seen.append(("unsub", channel)))
    client, ws = await make_server()
    alice, bob = await connect(client), await connect(client)
    reply = await subscribe(alice, "news")
    assert reply == {"channel": "news", "offset": 0, "epoch": ws.broker.epoch, "recovered": False}
    await subscribe(bob, "news")
    assert await ws.publish("news", "article", {"title": "hello"}) == 1
    expected = {"event": "article", "channel": "news", "data": {"title": "hello"}, "offset": 1}
    assert await alice.recv() == expected
    assert await bob.recv() == expected
    assert (
        await alice.request({"event": "ws:unsubscribe", "id": "u", "data": {"channel": "news"}})
    )["data"] == {}
    await ws.publish("news", "article", 2)
    assert (await bob.recv())["offset"] == 2
    ping = await alice.request({"event": "ws:ping", "id": "p"})  # nothing queued before the pong
    assert ping["event"] == "ws:ping"
    assert seen == [("sub", "news"), ("sub", "news"), ("unsub", "news")]


async def test_client_publish_obeys_namespace_policy(make_server, connect: Connect):
    """By default clients may not publish; a namespace can allow subscribers to."""
    client, _ws = await make_server(channels={"chat:*": {"publish": "subscribers"}})
    peer = await connect(client)
    frame: dict[str, Any] = {
        "event": "ws:publish",
        "id": 1,
        "data": {"channel": "news", "event": "x", "data": 1},
    }
    assert (await peer.request(frame))["error"]["code"] == "forbidden"
    frame["data"]["channel"] = "chat:room"
    frame["id"] = 2
    assert (await peer.request(frame))["error"]["code"] == "forbidden"  # not subscribed yet
    await subscribe(peer, "chat:room")
    frame["id"] = 3
    await peer.send(frame)
    push = await peer.recv()
    assert push == {"event": "x", "channel": "chat:room", "data": 1, "offset": 1}
    reply = await peer.recv()
    assert reply == {
        "event": "ws:publish",
        "id": 3,
        "data": {"offset": 1, "epoch": _ws.broker.epoch},
    }
    frame["id"] = 4
    frame["data"]["event"] = "ws:join"
    assert (await peer.request(frame))["error"]["code"] == "forbidden"


async def test_subscribe_policy_function_sees_the_query(make_server, connect: Connect):
    """A namespace policy function decides from the socket, channel and query (a room password)."""
    client, ws = await make_server()
    ws.namespaces.add("room:*", subscribe=lambda socket, channel, query: query == "sesame")
    peer = await connect(client)
    refused = await peer.request(
        {"event": "ws:subscribe", "id": 1, "data": {"channel": "room:1", "query": "guess"}}
    )
    assert refused["error"]["code"] == "forbidden"
    assert (await subscribe(peer, "room:1", request_id=2, query="sesame"))["channel"] == "room:1"


@pytest.mark.parametrize(
    "data",
    [None, "news", {}, {"channel": ""}, {"channel": "bad name"}, {"channel": "x" * 201},
     {"channel": "ok", "since": {"offset": -1, "epoch": "e"}},
     {"channel": "ok", "since": {"offset": 2**63, "epoch": "e"}},
     {"channel": "ok", "since": {"offset": 1}}, {"channel": "ok", "since": 5}],
)  # fmt: skip
async def test_bad_subscribe_requests_get_bad_frame(make_server, connect: Connect, data):
    """Invalid channel names and since values are refused with bad_frame; the socket stays."""
    client, ws = await make_server()
    peer = await connect(client)
    answer = await peer.request({"event": "ws:subscribe", "id": 1, "data": data})
    assert answer["error"]["code"] == "bad_frame"
    assert ws.hub.channels() == {}
    assert (await peer.request({"event": "ws:ping", "id": 2}))["event"] == "ws:ping"


async def test_recovery_replays_exactly_what_was_missed(make_server, connect: Connect):
    """Subscribe, disconnect, 50 publications, resubscribe with since: exactly those 50, then recovered."""
    client, ws = await make_server()
    peer = await connect(client)
    reply = await subscribe(peer, "feed")
    await ws.publish("feed", "item", 0)
    first = await peer.recv()
    await peer.close()
    for i in range(1, 51):
        await ws.publish("feed", "item", i)
    again = await connect(client)
    since = {"offset": first["offset"], "epoch": reply["epoch"]}
    await again.send(
        {"event": "ws:subscribe", "id": "r", "data": {"channel": "feed", "since": since}}
    )
    frames = [await again.recv() for _ in range(51)]
    assert [f["data"] for f in frames[:50]] == list(range(1, 51))
    assert [f["offset"] for f in frames[:50]] == list(range(2, 52))
    assert frames[50] == {
        "event": "ws:subscribe",
        "id": "r",
        "data": {"channel": "feed", "offset": 51, "epoch": reply["epoch"], "recovered": True},
    }


async def test_history_exceeded_is_not_recovered(make_server, connect: Connect):
    """When history no longer holds the gap, nothing is replayed and recovered is false."""
    client, ws = await make_server(channels={"small": {"history_size": 5}})
    peer = await connect(client)
    reply = await subscribe(peer, "small")
    await peer.close()
    for i in range(10):
        await ws.publish("small", "item", i)
    again = await connect(client)
    since = {"offset": 0, "epoch": reply["epoch"]}
    answer = await subscribe(again, "small", since=since)
    assert answer == {"channel": "small", "offset": 10, "epoch": reply["epoch"], "recovered": False}
    await ws.publish("small", "item", "live")
    assert (await again.recv())["data"] == "live"  # nothing replayed before the live one


async def test_history_off_in_a_namespace(make_server, connect: Connect):
    """history_size 0: offsets still count, but nothing can be recovered."""
    client, ws = await make_server(channels={"live:*": {"history_size": 0}})
    peer = await connect(client)
    reply = await subscribe(peer, "live:scores")
    await ws.publish("live:scores", "goal", 1)
    assert (await peer.recv())["offset"] == 1
    await peer.close()
    await ws.publish("live:scores", "goal", 2)
    again = await connect(client)
    answer = await subscribe(again, "live:scores", since={"offset": 1, "epoch": reply["epoch"]})
    assert answer["recovered"] is False
    assert answer["offset"] == 2


async def test_wrong_epoch_is_not_recovered(make_server, connect: Connect):
    """A since from another epoch (e.g. before a broker restart) gets recovered false."""
    client, ws = await make_server()
    peer = await connect(client)
    await ws.publish("feed", "item", 1)
    answer = await subscribe(peer, "feed", since={"offset": 0, "epoch": "some-other-epoch"})
    assert answer["recovered"] is False
    assert answer["offset"] == 1


class GatedBroker(MemoryBroker):
    """A memory broker whose history reads can be held open, to publish inside the recovery window."""

    def __init__(self) -> None:
        super().__init__()
        self.before_read = asyncio.Event()
        self.after_read = asyncio.Event()
        self.reading = asyncio.Event()
        self.read_done = asyncio.Event()

    async def history(self, channel: str, since: int, epoch: str | None) -> History:
        self.reading.set()
        await self.before_read.wait()
        found = await super().history(channel, since, epoch)
        self.read_done.set()
        await self.after_read.wait()
        return found


async def test_publications_during_recovery_are_delivered_exactly_once(
    aiohttp_client, connect: Connect, bus
):
    """One publish before the history read and one after it, both during recovery: each arrives once."""
    broker = GatedBroker()
    app = web.Application()
    ws = monument_ws.setup(app, websocket=True, bus=bus, broker=broker)
    client = await aiohttp_client(app)
    broker.before_read.set()
    broker.after_read.set()
    first = await connect(client)
    reply = await subscribe(first, "feed")
    await ws.publish("feed", "item", "a")
    await first.close()
    broker.before_read.clear()
    broker.after_read.clear()
    broker.reading.clear()
    broker.read_done.clear()

    peer = await connect(client)
    since = {"offset": 0, "epoch": reply["epoch"]}
    await peer.send(
        {"event": "ws:subscribe", "id": "r", "data": {"channel": "feed", "since": since}}
    )
    await asyncio.wait_for(broker.reading.wait(), 10)
    await ws.publish("feed", "item", "b")  # live (buffered) AND in the history about to be read
    broker.before_read.set()
    await asyncio.wait_for(broker.read_done.wait(), 10)
    await ws.publish("feed", "item", "c")  # live (buffered) only
    broker.after_read.set()
    frames = [await peer.recv() for _ in range(4)]
    assert [f.get("data") for f in frames[:2]] == ["a", "b"]
    assert frames[2]["event"] == "ws:subscribe"
    assert frames[2]["data"]["recovered"] is True
    assert frames[3]["data"] == "c"
    await ws.publish("feed", "item", "d")
    assert (await peer.recv())["data"] == "d"  # and nothing duplicated in between


class FlakySubscribeBroker(MemoryBroker):
    """A memory broker whose channel subscribes can be failed, or held open, on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_next = False
        self.subscribes = 0
        self.unsubscribed: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def subscribe(self, channel: str) -> None:
        self.subscribes += 1
        await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise monument_ws.Unavailable("the broker is away")
        await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.unsubscribed.append(channel)
        await super().unsubscribe(channel)

    def subscribed(self, channel: str) -> bool:
        return channel in self._subscribed


async def test_a_failed_broker_subscribe_leaves_nothing_behind(
    aiohttp_client, connect: Connect, bus
):
    """The socket that hit it gets unavailable; the next subscriber subscribes the broker again
    and gets the channel's publications (the table had kept an empty entry, so it never did)."""
    broker = FlakySubscribeBroker()
    app = web.Application()
    ws = monument_ws.setup(app, websocket=True, bus=bus, broker=broker)
    client = await aiohttp_client(app)
    peer = await connect(client)
    broker.fail_next = True
    answer = await peer.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "feed"}})
    assert answer["error"]["code"] == "unavailable", answer
    assert ws.hub.channels() == {}
    assert broker.unsubscribed == ["feed"]  # what a broker remembered of it is forgotten
    await subscribe(peer, "feed")
    assert broker.subscribes == 2
    await ws.publish("feed", "item", "x")
    assert (await peer.recv())["data"] == "x"


async def test_subscribers_arriving_while_the_broker_subscribes_wait_for_it(
    aiohttp_client, connect: Connect, bus: monument_ws.EventBus
):
    """One broker subscribe and one CHANNEL_OPENED for sockets that subscribe at the same time."""
    broker = FlakySubscribeBroker()
    app = web.Application()
    ws = monument_ws.setup(app, websocket=True, bus=bus, broker=broker)
    opened: list[str] = []

    @bus.on(signals.CHANNEL_OPENED)
    async def on_opened(event: str, channel: str, **_: Any) -> None:
        opened.append(channel)

    client = await aiohttp_client(app)
    first, second = await connect(client), await connect(client)
    broker.gate.clear()
    for peer in (first, second):
        await peer.send({"event": "ws:subscribe", "id": 1, "data": {"channel": "feed"}})
    await eventually(lambda: broker.subscribes == 1)
    broker.gate.set()
    for peer in (first, second):
        assert (await peer.recv())["event"] == "ws:subscribe"
    assert broker.subscribes == 1
    assert opened == ["feed"]
    assert ws.hub.channels() == {"feed": 2}


async def test_a_subscriber_arriving_while_the_last_one_leaves_keeps_the_channel_subscribed(
    aiohttp_client, connect: Connect, bus: monument_ws.EventBus
):
    """The last subscriber leaves and, while CHANNEL_CLOSED's receiver still runs, a new one
    subscribes: it waits for the close to finish, then subscribes the broker again -- the
    close's broker unsubscribe cannot undo its subscribe -- and gets the publications."""
    broker = FlakySubscribeBroker()
    app = web.Application()
    ws = monument_ws.setup(app, websocket=True, bus=bus, broker=broker)
    closing = asyncio.Event()
    release = asyncio.Event()

    @bus.on(signals.CHANNEL_CLOSED)
    async def on_closed(event: str, channel: str, **_: Any) -> None:
        closing.set()
        await release.wait()

    client = await aiohttp_client(app)
    first, second = await connect(client), await connect(client)
    await subscribe(first, "feed")
    await first.send({"event": "ws:unsubscribe", "id": "u", "data": {"channel": "feed"}})
    await asyncio.wait_for(closing.wait(), 10)
    await second.send({"event": "ws:subscribe", "id": "s", "data": {"channel": "feed"}})
    await asyncio.sleep(0.05)  # the subscribe is now waiting for the close
    release.set()
    assert (await first.recv())["id"] == "u"  # the close has finished, broker unsubscribe too
    assert (await second.recv())["event"] == "ws:subscribe"
    assert broker.subscribed("feed")
    assert ws.hub.channels() == {"feed": 1}
    await ws.publish("feed", "item", "after")
    assert (await second.recv())["data"] == "after"


async def test_encode_once_for_a_thousand_subscribers(make_server, connect: Connect, monkeypatch):
    """A publish to 1,000 local subscribers is serialized once, and all 1,000 get it."""
    client, ws = await make_server(heartbeat=0)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = client.make_url("/ws")
    peers = [await welcomed(await session.ws_connect(url)) for _ in range(1000)]
    for peer in peers:
        await peer.send({"event": "ws:subscribe", "id": 1, "data": {"channel": "big"}})
    for peer in peers:
        await peer.recv()
    assert ws.hub.channels() == {"big": 1000}
    calls = []
    original = protocol.channel_push

    def counting(*args: Any, **kwargs: Any) -> bytes:
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(protocol, "channel_push", counting)
    await ws.publish("big", "news", {"n": 1})
    received = [await peer.recv() for peer in peers]
    assert len(calls) == 1
    assert all(frame["data"] == {"n": 1} for frame in received)
    for peer in peers:
        await peer.close()
    await session.close()


async def test_no_traces_after_1000_subscribe_close_cycles(make_server, connect: Connect, bus):
    """Unsubscribe and close leave no channel, subscription, registry entry or receiver behind."""
    client, ws = await make_server(channels={"room:*": {"join_leave": True}})
    receivers_before = {name: len(sig.receivers) for name, sig in bus.signals().items()}
    for i in range(1000):
        peer = await connect(client)
        await subscribe(peer, f"room:{i % 7}")
        if i % 2:
            await peer.request(
                {"event": "ws:unsubscribe", "id": "u", "data": {"channel": f"room:{i % 7}"}}
            )
        await peer.close()
    await eventually(lambda: len(ws.hub) == 0, "every socket gone")
    assert ws.hub.channels() == {}
    assert not ws.hub._subscriptions
    assert ws.broker.stats() == {
        "channels_subscribed": 0,
        "histories": 0,
        "presence_channels": 0,
        "clients": 0,
        "queues": 0,
        "idempotency_keys": 0,
    }
    assert {name: len(sig.receivers) for name, sig in bus.signals().items()} == receivers_before


async def test_join_and_leave_pushes(make_server, connect: Connect):
    """In a join_leave namespace, subscribers see others join and leave (no offset, no history)."""
    client, _ws = await make_server(channels={"room:*": {"join_leave": True}})
    alice, bob = await connect(client), await connect(client)
    await subscribe(alice, "room:1")
    assert await alice.recv() == {
        "event": "ws:join",
        "channel": "room:1",
        "data": {"client_id": alice.client_id},
    }
    await subscribe(bob, "room:1")
    joined = await alice.recv()
    assert joined["data"] == {"client_id": bob.client_id}
    await bob.close()
    left = await alice.recv()
    assert left == {"event": "ws:leave", "channel": "room:1", "data": {"client_id": bob.client_id}}


async def test_broadcast_and_send_to_one_client(make_server, connect: Connect):
    """broadcast reaches every socket; send_to reaches only that client id's sockets."""
    client, ws = await make_server()
    alice, bob = await connect(client), await connect(client)
    await ws.broadcast("notice", "all")
    assert (await alice.recv())["data"] == "all"
    assert (await bob.recv())["data"] == "all"
    assert await ws.send_to(bob.client_id, "dm", "just bob") is True
    assert await bob.recv() == {"event": "dm", "data": "just bob"}
    assert await ws.send_to("nobody-has-this-id", "dm", "x") is False
    assert (await alice.request({"event": "ws:ping", "id": 1}))["event"] == "ws:ping"


async def test_python_client_resubscribes_and_recovers_after_a_server_restart(bus):
    """After a restart on the same port (broker kept), the client resubscribes with since and recovers."""
    broker = MemoryBroker()  # outlives the server, as Redis would

    def make_app() -> tuple[web.Application, monument_ws.MonumentWS]:
        app = web.Application()
        plugin = monument_ws.setup(app, websocket=True, bus=bus, broker=broker, secret="shared")
        return app, plugin

    app, plugin = make_app()
    server = TestServer(app)
    await server.start_server()
    port = server.port
    received: list[Any] = []
    resubscribed: list[dict[str, Any]] = []
    client = Client(str(server.make_url("/ws")), backoff_initial=0.01, backoff_max=0.05)
    client.on("ws:resubscribed", resubscribed.append)
    try:
        await client.connect()
        subscription = await client.subscribe("feed", lambda m: received.append(m.data))
        await plugin.publish("feed", "item", 0)
        await eventually(lambda: received == [0], "the live publication")
        await server.close()
        for i in range(1, 6):
            await broker.publish("feed", "item", i, history_size=100, history_ttl=300)
        app, plugin = make_app()
        server = TestServer(app, port=port)
        await server.start_server()
        await eventually(lambda: len(resubscribed) == 1, "the automatic resubscribe")
        assert resubscribed == [{"channel": "feed", "recovered": True}]
        assert received == [0, 1, 2, 3, 4, 5]
        assert subscription.recovered is True
        await plugin.publish("feed", "item", 6)
        await eventually(lambda: received[-1] == 6, "live again")
    finally:
        await client.close()
        await server.close()
