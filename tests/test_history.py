"""Paging a channel's history window, over real sockets: ``ws:history`` from a raw peer, the
Python client's ``history()``, the server API's and a Publisher's, on the memory broker and on
Redis."""

from typing import Any

import pytest

from monument_ws import MonumentWS
from monument_ws.auth import Session
from monument_ws.brokers.base import Broker, HistoryPage
from monument_ws.brokers.memory import MemoryBroker
from monument_ws.channels.history import HistoryPages
from monument_ws.client import Client
from monument_ws.connection.auth import channel_of_user
from monument_ws.protocol.errors import BadFrame, Forbidden
from monument_ws.publisher import Publisher
from tests.conftest import REDIS_URL, Connect, FakeClock, Peer
from tests.test_channels import subscribe

CHANNELS = {
    "secret:*": {"subscribe": "nobody"},
    "room:*": {"subscribe": lambda socket, channel, query: query == "open sesame"},
    "chat:*": {"publish": "subscribers"},
}


async def history(peer: Peer, request_id: Any = "h", **data: Any) -> dict[str, Any]:
    """The ``ws:history`` reply's data (fails on an error frame)."""
    answer = await peer.request({"event": "ws:history", "id": request_id, "data": data})
    assert answer["event"] == "ws:history", answer
    reply: dict[str, Any] = answer["data"]
    return reply


async def refused(peer: Peer, data: Any, request_id: Any = "bad") -> str:
    """The error code ``ws:history`` with ``data`` gets."""
    answer = await peer.request({"event": "ws:history", "id": request_id, "data": data})
    assert answer["event"] == "ws:error", answer
    code: str = answer["error"]["code"]
    return code


def offsets(page: dict[str, Any]) -> list[int]:
    return [p["offset"] for p in page["publications"]]


async def test_an_empty_channel_has_an_empty_page(make_server, connect: Connect, broker_settings):
    client, _ = await make_server(**broker_settings)
    peer = await connect(client)
    page = await history(peer, channel="news:empty")
    assert page == {
        "channel": "news:empty",
        "epoch": page["epoch"],
        "offset": 0,
        "publications": [],
        "more": False,
    }
    assert isinstance(page["epoch"], str)
    assert (await history(peer, channel="news:empty", after=0))["publications"] == []


async def test_250_publications_paged_back_then_forward(
    make_server, connect: Connect, broker_settings
):
    """A window of 100 of 250 publications, 30 a page: back from the latest, then forward from
    the oldest, give the same 100 publications, each once, oldest first on every page."""
    client, ws = await make_server(**broker_settings)
    for i in range(1, 251):
        await ws.publish("news:big", "item", {"n": i})
    peer = await connect(client)

    back: list[list[int]] = []
    page = await history(peer, channel="news:big", limit=30)
    epoch = page["epoch"]
    assert page["offset"] == 250
    back.append(offsets(page))
    while page["more"]:
        page = await history(
            peer, channel="news:big", limit=30, before=offsets(page)[0], epoch=epoch
        )
        back.append(offsets(page))
    assert back == [
        list(range(221, 251)),
        list(range(191, 221)),
        list(range(161, 191)),
        list(range(151, 161)),
    ]

    forward: list[list[int]] = []
    after = 0
    while True:
        page = await history(peer, channel="news:big", limit=30, after=after, epoch=epoch)
        forward.append(offsets(page))
        if not page["more"]:
            break
        after = offsets(page)[-1]
    assert forward == [
        list(range(151, 181)),
        list(range(181, 211)),
        list(range(211, 241)),
        list(range(241, 251)),
    ]
    assert sorted(o for page in back for o in page) == [o for page in forward for o in page]
    first = (await history(peer, channel="news:big", limit=1, after=150))["publications"]
    assert first == [{"event": "item", "data": {"n": 151}, "offset": 151}]


async def test_pages_stay_consistent_while_the_window_moves(
    make_server, connect: Connect, broker_settings
):
    """Publications arriving between pages do not shift the pages (they are by offset): going
    back goes on where it was and ends at the window's new start."""
    client, ws = await make_server(channels={"log:*": {"history_size": 20}}, **broker_settings)
    for i in range(1, 21):
        await ws.publish("log:1", "line", i)
    peer = await connect(client)
    first = await history(peer, channel="log:1", limit=10)
    assert offsets(first) == list(range(11, 21))
    for i in range(21, 26):  # the window is now 6..25
        await ws.publish("log:1", "line", i)
    second = await history(peer, channel="log:1", limit=10, before=11, epoch=first["epoch"])
    assert offsets(second) == list(range(6, 11))
    assert second["more"] is False
    assert second["offset"] == 25
    newer = await history(peer, channel="log:1", after=20, epoch=first["epoch"])
    assert offsets(newer) == list(range(21, 26))
    assert newer["more"] is False


async def test_another_epoch_answers_an_empty_page(make_server, connect: Connect, broker_settings):
    client, ws = await make_server(**broker_settings)
    await ws.publish("news:e", "item", 1)
    peer = await connect(client)
    page = await history(peer, channel="news:e", epoch="not-this-one")
    assert page["publications"] == []
    assert page["more"] is False
    assert page["epoch"] != "not-this-one"
    assert page["offset"] == 1


async def test_limits_and_bad_input_are_bad_frames(make_server, connect: Connect, broker_settings):
    """A limit above 100 (or below 1), both directions, offsets that are not integers >= 0, an
    epoch that is not a string, a bad channel: bad_frame, and the socket stays open."""
    client, ws = await make_server(**broker_settings)
    await ws.publish("news:x", "item", 1)
    peer = await connect(client)
    bad: list[Any] = [
        {"channel": "news:x", "limit": 101},
        {"channel": "news:x", "limit": 0},
        {"channel": "news:x", "limit": True},
        {"channel": "news:x", "limit": "5"},
        {"channel": "news:x", "before": 3, "after": 1},
        {"channel": "news:x", "before": -1},
        {"channel": "news:x", "before": 2**63},  # past what the store and Redis can hold
        {"channel": "news:x", "after": 2**70},
        {"channel": "news:x", "after": 1.5},
        {"channel": "news:x", "after": False},
        {"channel": "news:x", "epoch": 7},
        {"channel": "no spaces"},
        {"limit": 5},
        ["news:x"],
        None,
    ]
    for i, data in enumerate(bad):
        assert await refused(peer, data, request_id=i) == "bad_frame", data
    page = await history(peer, channel="news:x", limit=100)
    assert offsets(page) == [1]


async def test_the_subscribe_policy_decides(make_server, connect: Connect, broker_settings):
    """A socket reads what it may subscribe to: a policy that says no (or a query it refuses)
    is forbidden, another user's channel too; its own user channel and a channel it is
    subscribed to are readable."""
    client, ws = await make_server(channels=CHANNELS, **broker_settings)

    async def parse(request: Any) -> Session:
        return Session(user=request.query.get("user"))

    ws.session_parser = parse
    await ws.publish("secret:1", "item", 1)
    await ws.publish("room:1", "item", 1)
    await ws.publish_to_user("ada", "note", "for ada")
    ada = await connect(client, "/ws?user=ada")
    assert await refused(ada, {"channel": "secret:1"}) == "forbidden"
    assert await refused(ada, {"channel": "room:1"}) == "forbidden"
    assert await refused(ada, {"channel": "room:1", "query": "wrong"}) == "forbidden"
    assert await refused(ada, {"channel": channel_of_user("bob")}) == "forbidden"
    assert offsets(await history(ada, channel="room:1", query="open sesame")) == [1]
    await subscribe(ada, "room:1", query="open sesame")
    assert offsets(await history(ada, channel="room:1")) == [1]  # subscribed: no query needed
    mine = await history(ada, channel=channel_of_user("ada"))
    assert mine["publications"] == [{"event": "note", "data": "for ada", "offset": 1}]
    assert ws.stats.refused["subscribe"] >= 3
    assert ws.stats.refused["reserved"] >= 1


async def test_an_authenticated_namespace_is_not_read_anonymously(
    make_server, connect: Connect, broker_settings
):
    client, ws = await make_server(
        channels={"members:*": {"authenticated": True}}, **broker_settings
    )
    await ws.publish("members:1", "item", 1)
    peer = await connect(client)
    assert await refused(peer, {"channel": "members:1"}) == "unauthorized"


async def test_the_excluded_client_does_not_see_its_publication(
    make_server, connect: Connect, broker_settings
):
    """As in recovery: the client a publication left out does not find it in history; others
    and the server do."""
    client, ws = await make_server(channels=CHANNELS, **broker_settings)
    sender, other = await connect(client), await connect(client)
    await subscribe(sender, "chat:1")
    await ws.publish("chat:1", "said", "first")
    await ws.publish("chat:1", "said", "mine", exclude=sender.client_id)
    await ws.publish("chat:1", "said", "third")
    assert offsets(await history(sender, channel="chat:1")) == [1, 3]
    assert offsets(await history(other, channel="chat:1")) == [1, 2, 3]
    assert offsets(await ws.history("chat:1")) == [1, 2, 3]


async def test_python_client_history(make_server, broker_settings):
    client, ws = await make_server(channels=CHANNELS, **broker_settings)
    for i in range(1, 8):
        await ws.publish("news:py", "item", i)
    async with Client(str(client.make_url("/ws"))) as me:
        page = await me.history("news:py", limit=3)
        assert offsets(page) == [5, 6, 7]
        assert page["more"] is True
        older = await me.history("news:py", before=5, limit=3, epoch=page["epoch"])
        assert offsets(older) == [2, 3, 4]
        assert older["publications"][0] == {"event": "item", "data": 2, "offset": 2}
        newer = await me.history("news:py", after=4)
        assert offsets(newer) == [5, 6, 7]
        assert newer["more"] is False
        assert offsets(await me.history("room:1", query="open sesame")) == []
        with pytest.raises(Forbidden):
            await me.history("secret:1")
        with pytest.raises(BadFrame):
            await me.history("news:py", limit=1000)


async def test_server_api_history(make_server, broker_settings):
    _, ws = await make_server(**broker_settings)
    assert (await ws.history("news:api"))["publications"] == []
    for i in range(1, 61):
        await ws.publish("news:api", "item", i)
    page = await ws.history("news:api")
    assert offsets(page) == list(range(11, 61))
    assert page["more"] is True
    assert offsets(await ws.history("news:api", before=11)) == list(range(1, 11))
    for bad, why in (
        ({"limit": 101}, "'limit' must be"),
        ({"before": 1, "after": 1}, "not both"),
        ({"after": -2}, "'after' must be"),
        ({"epoch": 3}, "'epoch' must be"),
    ):
        with pytest.raises(ValueError, match=why):
            await ws.history("news:api", **bad)
    with pytest.raises(ValueError, match="channel name"):
        await ws.history("bad channel")


async def test_publisher_history(make_server, redis_prefix: str):
    """A Publisher pages the history the servers wrote, as the servers do."""
    _, ws = await make_server(broker=REDIS_URL, broker_prefix=redis_prefix)
    for i in range(1, 6):
        await ws.publish("news:pub", "item", i)
    async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
        page = await publisher.history("news:pub", limit=2)
        assert offsets(page) == [4, 5]
        assert page == await ws.history("news:pub", limit=2)


async def test_expired_publications_are_left_out(make_server, connect: Connect, broker_settings):
    """Publications older than the namespace's history_ttl (on the broker's injected clock) are
    in no page; the newer ones are, whichever way the page goes."""
    clock = FakeClock()
    broker: Broker
    if "broker" in broker_settings:
        from monument_ws.brokers.redis import RedisBroker

        broker = RedisBroker(REDIS_URL, prefix=broker_settings["broker_prefix"], clock=clock)
    else:
        broker = MemoryBroker(clock=clock)
    client, ws = await make_server(broker=broker, channels={"gone:*": {"history_ttl": 60}})
    for i in range(1, 4):
        await ws.publish("gone:1", "item", i)
    clock.advance(61)
    await ws.publish("gone:1", "item", 4)
    peer = await connect(client)
    for data in ({}, {"after": 0}, {"before": 5}):
        page = await history(peer, channel="gone:1", limit=2, **data)
        assert offsets(page) == [4]
        assert page["more"] is False
        assert page["offset"] == 4


class Store:
    """A history source standing in for a store that keeps some namespaces itself."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int | None, int | None, int]] = []

    async def history_page(
        self, channel: str, *, before: int | None = None, after: int | None = None, limit: int
    ) -> HistoryPage:
        self.asked.append((channel, before, after, limit))
        return HistoryPage([], 0, "store", more=False)


async def test_a_namespace_can_read_from_another_source(make_server):
    """The seam for stores: the source the route names for a channel answers its pages."""
    _, ws = await make_server()
    store = Store()
    pages = HistoryPages(ws.broker, lambda channel: store if channel.startswith("kept:") else None)
    assert pages.source("kept:1") is store
    assert pages.source("news:1") is ws.broker
    page = await pages.page("kept:1", before=9, limit=5)
    assert page["epoch"] == "store"
    assert store.asked == [("kept:1", 9, None, 5)]


def test_the_plugin_is_a_server_api() -> None:
    assert callable(MonumentWS.history)
    assert callable(Publisher.history)
