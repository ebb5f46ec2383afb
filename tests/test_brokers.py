"""One conformance suite for every broker: memory and a real Redis pass the same assertions."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monument_ws.brokers import MemoryBroker
from monument_ws.brokers.base import Broker, Publication
from tests.conftest import REDIS_URL, eventually


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Collects what a broker delivers to its process."""

    def __init__(self, broker: Broker | None = None) -> None:
        self.publications: list[Publication] = []
        self.broadcasts: list[bytes] = []
        self.broadcast_excludes: list[str | None] = []
        self.to_clients: list[tuple[str, bytes]] = []
        self.ephemeral: list[tuple[str, bytes]] = []
        self.gaps: list[str] = []
        self.restarts: list[str | None] = []  # the ``restarted`` of each gap
        self.controls: list[bytes] = []
        if broker is not None:
            broker.attach(self)

    def deliver(self, publication: Publication) -> None:
        self.publications.append(publication)

    def deliver_broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        self.broadcasts.append(frame)
        self.broadcast_excludes.append(exclude)

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        self.to_clients.append((client_id, frame))

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        self.ephemeral.append((channel, frame))

    def resubscribe_all(
        self, channel: str, restarted: str | None = None, after: int | None = None
    ) -> None:
        self.gaps.append(channel)
        self.restarts.append(restarted)

    def deliver_control(self, message: bytes) -> None:
        self.controls.append(message)


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request, redis_prefix_or_none) -> AsyncIterator[Any]:
    """A factory of started brokers of one kind sharing one store (two 'processes' for Redis)."""
    clock = Clock()
    started: list[Broker] = []
    shared_memory = MemoryBroker(clock=clock)

    async def make() -> Broker:
        if request.param == "memory":
            broker: Broker = shared_memory
        else:
            from monument_ws.brokers.redis import RedisBroker

            broker = RedisBroker(REDIS_URL, prefix=redis_prefix_or_none, clock=clock)
        if broker not in started:
            await broker.start()
            started.append(broker)
        return broker

    make.clock = clock  # type: ignore[attr-defined]
    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for broker in started:
        await broker.stop()


@pytest.fixture
def redis_prefix_or_none(request) -> Any:
    if request.node.callspec.params.get("make_broker") == "redis":
        return request.getfixturevalue("redis_prefix")
    return None


async def publish(
    broker: Broker, channel: str, data: Any, size: int = 100, ttl: float = 300
) -> int:
    offset, _ = await broker.publish(channel, "e", data, history_size=size, history_ttl=ttl)
    return offset


async def test_offsets_count_up_per_channel_within_one_epoch(make_broker):
    """Each channel's offsets are 1, 2, 3 … and share the broker's epoch."""
    broker = await make_broker()
    a1 = await broker.publish("a", "e", 1, history_size=10, history_ttl=60)
    a2 = await broker.publish("a", "e", 2, history_size=10, history_ttl=60)
    b1 = await broker.publish("b", "e", 1, history_size=10, history_ttl=60)
    assert (a1[0], a2[0], b1[0]) == (1, 2, 1)
    assert a1[1] == a2[1]


async def test_subscribed_channels_are_delivered_in_order_with_encoded_frames(make_broker):
    """A subscriber gets each publication once, in offset order, as the final frame bytes."""
    broker = await make_broker()
    recorder = Recorder(broker)
    await broker.subscribe("news")
    for i in range(20):
        await publish(broker, "news", {"i": i})
    await publish(broker, "other", "not subscribed")
    await eventually(lambda: len(recorder.publications) == 20, "20 publications")
    assert [p.offset for p in recorder.publications] == list(range(1, 21))
    import orjson

    assert orjson.loads(recorder.publications[3].frame) == {
        "event": "e",
        "channel": "news",
        "data": {"i": 3},
        "offset": 4,
    }
    await broker.unsubscribe("news")
    await publish(broker, "news", "after")
    await asyncio.sleep(0.05)  # give a wrongly delivered message the chance to arrive
    assert len(recorder.publications) == 20


async def test_history_since_an_offset(make_broker):
    """history returns publications after `since`, complete when nothing is missing."""
    broker = await make_broker()
    for i in range(10):
        _, epoch = await broker.publish("h", "e", i, history_size=100, history_ttl=300)
    found = await broker.history("h", 4, epoch)
    assert [p.offset for p in found.publications] == [5, 6, 7, 8, 9, 10]
    assert (found.offset, found.epoch, found.complete) == (10, epoch, True)
    assert (await broker.history("h", 10, epoch)).complete is True
    assert (await broker.history("h", 10, epoch)).publications == []


async def test_history_is_bounded_by_size(make_broker):
    """Beyond history_size the oldest are gone, and asking for them is not complete."""
    broker = await make_broker()
    for i in range(10):
        _, epoch = await broker.publish("s", "e", i, history_size=3, history_ttl=300)
    found = await broker.history("s", 0, epoch)
    assert found.complete is False
    assert (await broker.history("s", 7, epoch)).complete is True
    assert [p.offset for p in (await broker.history("s", 7, epoch)).publications] == [8, 9, 10]


async def test_history_is_bounded_by_age(make_broker):
    """Publications older than history_ttl (on the injected clock) are no longer replayed."""
    broker = await make_broker()
    _, epoch = await broker.publish("t", "e", "old", history_size=10, history_ttl=60)
    make_broker.clock.now += 61
    await broker.publish("t", "e", "new", history_size=10, history_ttl=60)
    found = await broker.history("t", 0, epoch)
    assert found.complete is False
    assert [p.offset for p in found.publications] == [2]
    assert (await broker.history("t", 1, epoch)).complete is True


async def test_wrong_epoch_or_future_offset_is_not_complete(make_broker):
    """Another epoch, or an offset beyond the top, cannot be recovered."""
    broker = await make_broker()
    _, epoch = await broker.publish("w", "e", 1, history_size=10, history_ttl=60)
    assert (await broker.history("w", 0, "not-the-epoch")).complete is False
    assert (await broker.history("w", 5, epoch)).complete is False


async def test_empty_channel_has_a_stable_epoch(make_broker):
    """A channel never published to reports offset 0 and the epoch later publishes use."""
    broker = await make_broker()
    empty = await broker.history("fresh", 0, None)
    assert (empty.offset, empty.complete) == (0, False)
    _, epoch = await broker.publish("fresh", "e", 1, history_size=10, history_ttl=60)
    assert epoch == empty.epoch
    assert (await broker.history("fresh", 0, epoch)).complete is True


async def test_history_off_still_counts_offsets(make_broker):
    """history_size 0 keeps nothing but offsets keep counting."""
    broker = await make_broker()
    await publish(broker, "off", 1, size=0)
    offset = await publish(broker, "off", 2, size=0)
    assert offset == 2
    found = await broker.history("off", 0, (await broker.history("off", 2, None)).epoch)
    assert found.complete is False


async def test_non_json_data_raises_before_anything_changes(make_broker):
    """Data JSON cannot hold raises TypeError and consumes no offset."""
    broker = await make_broker()
    with pytest.raises(TypeError):
        await publish(broker, "bad", object())
    assert await publish(broker, "bad", 1) == 1


async def test_ephemeral_and_broadcast(make_broker):
    """Ephemeral frames reach subscribers without offset; broadcasts reach every process."""
    broker = await make_broker()
    recorder = Recorder(broker)
    await broker.subscribe("room")
    await broker.publish_ephemeral("room", b'{"event":"ws:join"}')
    await broker.publish_ephemeral("elsewhere", b'{"event":"ws:join"}')
    await broker.broadcast(b'{"event":"notice"}')
    await eventually(lambda: bool(recorder.ephemeral and recorder.broadcasts), "both frames")
    assert recorder.ephemeral == [("room", b'{"event":"ws:join"}')]
    assert recorder.broadcasts == [b'{"event":"notice"}']
    assert recorder.publications == []


async def test_presence_set_get_remove_and_expiry(make_broker):
    """Presence members are stored with info, removed, and expire on the injected clock."""
    broker = await make_broker()
    await broker.presence_set("p", "alice", {"label": "A"}, ttl=30)
    await broker.presence_set("p", "bob", {"label": "B"}, ttl=10)
    assert await broker.presence_get("p") == {"alice": {"label": "A"}, "bob": {"label": "B"}}
    await broker.presence_remove("p", "alice")
    assert await broker.presence_get("p") == {"bob": {"label": "B"}}
    make_broker.clock.now += 11
    assert await broker.presence_get("p") == {}


async def test_client_registry_routes_frames(make_broker):
    """send_to_client reaches a registered client (on another process for Redis), and not after."""
    holder = await make_broker()
    sender = await make_broker()
    recorder = Recorder(holder)
    assert await sender.send_to_client("c1", b"x") is False
    await holder.register_client("c1")
    assert await sender.send_to_client("c1", b'{"event":"dm"}') is True
    await eventually(lambda: bool(recorder.to_clients), "the frame")
    assert recorder.to_clients == [("c1", b'{"event":"dm"}')]
    await holder.unregister_client("c1")
    assert await sender.send_to_client("c1", b"x") is False


async def test_two_processes_see_one_order(make_broker):
    """Concurrent publishers: every subscribing process sees the same offsets in the same order."""
    one, two = await make_broker(), await make_broker()
    seen_one = Recorder(one)
    seen_two = Recorder(two) if two is not one else seen_one
    await one.subscribe("race")
    if two is not one:
        await two.subscribe("race")
    await asyncio.gather(*(publish(one if i % 2 else two, "race", i) for i in range(100)))
    await eventually(lambda: len(seen_one.publications) == 100, "all on one")
    assert [p.offset for p in seen_one.publications] == list(range(1, 101))
    if two is not one:
        await eventually(lambda: len(seen_two.publications) == 100, "all on two")
        assert [p.frame for p in seen_two.publications] == [p.frame for p in seen_one.publications]


async def test_peer_queue_push_read_remove(make_broker):
    """Items come back oldest first with growing seqs; removing one is atomic (exactly one
    of two racing removers gets it); ``through`` drops every item up to a seq."""
    a, b = await make_broker(), await make_broker()
    seqs = [await a.queue_push("in:c1", b'{"n":%d}' % i, size=10, ttl=60) for i in range(4)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 4
    assert await b.queue_read("in:c1", 0) == [(s, b'{"n":%d}' % i) for i, s in enumerate(seqs)]
    assert await b.queue_read("in:c1", seqs[1]) == [(seqs[2], b'{"n":2}'), (seqs[3], b'{"n":3}')]
    assert sorted(
        await asyncio.gather(a.queue_remove("in:c1", seqs[2]), b.queue_remove("in:c1", seqs[2]))
    ) == [0, 1]
    assert await a.queue_remove("in:c1", seqs[1], through=True) == 2
    assert await b.queue_read("in:c1", 0) == [(seqs[3], b'{"n":3}')]
    assert await b.queue_read("in:other", 0) == []


async def test_peer_queue_is_bounded_by_size_and_age(make_broker):
    """Beyond ``size`` the oldest items go; an item older than ``ttl`` is never read; a box
    made again after it expired numbers its items above the old ones."""
    broker = await make_broker()
    seqs = [await broker.queue_push("out:c2", b"%d" % i, size=3, ttl=10) for i in range(5)]
    assert [item for _, item in await broker.queue_read("out:c2", 0)] == [b"2", b"3", b"4"]
    make_broker.clock.now += 11
    assert await broker.queue_read("out:c2", 0) == []
    again = await broker.queue_push("out:c2", b"new", size=3, ttl=10)
    assert again > seqs[-1]
    assert await broker.queue_read("out:c2", seqs[-1]) == [(again, b"new")]


async def test_control_reaches_every_process(make_broker):
    """A control message reaches the listener of every process, the sender's included."""
    a, b = await make_broker(), await make_broker()
    if make_broker.kind == "memory":
        assert a is b  # one shared broker object: one listener
        heard = Recorder(a)
        await a.control(b"order")
        assert heard.controls == [b"order"]
    else:
        heard_a, heard_b = Recorder(a), Recorder(b)
        await a.control(b"order")
        await eventually(
            lambda: heard_a.controls == [b"order"] and heard_b.controls == [b"order"],
            "both processes",
        )


async def test_an_excluded_client_id_travels_with_the_publication(make_broker):
    """The excluded client id reaches the other process with the publication and the
    broadcast, and history keeps it; any characters survive (Redis carries it as hex)."""
    writer, reader = await make_broker(), await make_broker()
    recorder = Recorder(reader)
    await reader.subscribe("x")
    odd = "a:b/c\nd é"
    await writer.publish("x", "e", 1, history_size=10, history_ttl=60, exclude=odd)
    _, epoch = await writer.publish("x", "e", 2, history_size=10, history_ttl=60)
    await writer.broadcast(b'{"event":"b"}', odd)
    await writer.broadcast(b'{"event":"c"}')
    await eventually(lambda: len(recorder.publications) == 2, "two publications")
    await eventually(lambda: len(recorder.broadcasts) == 2, "two broadcasts")
    assert [(p.offset, p.exclude) for p in recorder.publications] == [(1, odd), (2, None)]
    assert recorder.broadcasts == [b'{"event":"b"}', b'{"event":"c"}']
    assert recorder.broadcast_excludes == [odd, None]
    kept = (await reader.history("x", 0, epoch)).publications
    assert [(p.offset, p.exclude) for p in kept] == [(1, odd), (2, None)]
    assert kept[0].frame == recorder.publications[0].frame


def page_offsets(page: Any) -> list[int]:
    return [p.offset for p in page.publications]


async def test_history_page_both_ways(make_broker):
    """history_page: the latest, before an offset, after one; oldest first; more that way."""
    broker = await make_broker()
    for i in range(12):
        await publish(broker, "pg", i, size=10)
    latest = await broker.history_page("pg", limit=4)
    assert (page_offsets(latest), latest.offset, latest.more) == ([9, 10, 11, 12], 12, True)
    oldest = await broker.history_page("pg", before=5, limit=4)
    assert (page_offsets(oldest), oldest.more) == ([3, 4], False)
    forward = await broker.history_page("pg", after=0, limit=4)
    assert (page_offsets(forward), forward.more) == ([3, 4, 5, 6], True)
    end = await broker.history_page("pg", after=8, limit=4)
    assert (page_offsets(end), end.more) == ([9, 10, 11, 12], False)
    assert page_offsets(await broker.history_page("pg", after=12, limit=4)) == []
    assert page_offsets(await broker.history_page("pg", before=1, limit=4)) == []
    assert page_offsets(await broker.history_page("pg", before=99, limit=2)) == [11, 12]
    empty = await broker.history_page("none", limit=4)
    assert (empty.publications, empty.offset, empty.more) == ([], 0, False)


async def test_history_page_skips_expired_publications(make_broker):
    """Expired publications still in the store are never in a page, whichever way it goes,
    and do not end a page early: going forward reads on past them."""
    broker = await make_broker()
    for i in range(6):
        await publish(broker, "old", i, ttl=60)
    make_broker.clock.now += 61
    for i in range(3):
        await publish(broker, "old", i, ttl=60)
    forward = await broker.history_page("old", after=0, limit=2)
    assert (page_offsets(forward), forward.more) == ([7, 8], True)
    backward = await broker.history_page("old", before=9, limit=5)
    assert (page_offsets(backward), backward.more) == ([7, 8], False)


async def test_history_page_keeps_the_exclusion(make_broker):
    """A page holds excluded publications with their client id: the caller decides."""
    broker = await make_broker()
    await broker.publish("ex", "e", 1, history_size=10, history_ttl=60, exclude="c1")
    page = await broker.history_page("ex", limit=5)
    assert [p.exclude for p in page.publications] == ["c1"]
