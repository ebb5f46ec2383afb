"""Peer queues (enqueue/consume) in both directions, bounded, surviving a reconnect to another
process."""

from typing import Any

import pytest
import redis.asyncio as aioredis

from monument_ws.brokers import MemoryBroker
from monument_ws.client import Client
from monument_ws.publisher import Publisher
from tests.conftest import REDIS_URL, eventually
from tests.test_brokers import Clock
from tests.test_cluster import Server, servers  # noqa: F401  (the fixture of server processes)


async def test_server_to_client_queue_waits_for_consume_with_a_filter(make_server):
    """Queued messages reach no handler: they wait in the client's queue, and consume() takes
    the oldest one the filter accepts."""
    client, ws = await make_server()
    pushed: list[Any] = []
    async with Client(str(client.make_url("/ws"))) as c:
        c.on("ws:enqueue", pushed.append)
        assert c.client_id is not None
        assert c.consume() is None
        first = await ws.enqueue(c.client_id, {"kind": "invoice", "n": 1})
        await ws.enqueue(c.client_id, {"kind": "note", "n": 2})
        (socket,) = list(ws.hub)
        await socket.enqueue({"kind": "invoice", "n": 3})
        await eventually(lambda: c.enqueued == 3, "three queued messages")
        note = c.consume(lambda data: data["kind"] == "note")
        assert note is not None
        assert note.data == {"kind": "note", "n": 2}
        taken = c.consume()
        assert taken is not None
        assert (taken.data, taken.seq) == ({"kind": "invoice", "n": 1}, first)
        assert c.consume(lambda data: data["kind"] == "note") is None
        assert c.enqueued == 1
        assert pushed == []


async def test_client_to_server_queue_is_consumed_by_the_socket(make_server):
    """client.enqueue() stores the message (its seq comes back); socket.consume() takes it with
    or without a filter, exactly once; a handler never sees it."""
    client, ws = await make_server()

    @ws.handler("take")
    async def take(message, socket):
        kind = message.data
        taken = await socket.consume(None if kind is None else lambda d: d["kind"] == kind)
        return [await socket.enqueued(), None if taken is None else taken.data]

    async with Client(str(client.make_url("/ws"))) as c:
        seqs = [await c.enqueue({"kind": k}) for k in ("a", "b", "a")]
        assert seqs == sorted(seqs)
        assert await c.call("take", "b") == [2, {"kind": "b"}]
        assert await c.call("take") == [1, {"kind": "a"}]
        assert await c.call("take", "b") == [1, None]
        assert await c.call("take") == [0, {"kind": "a"}]
        assert await c.call("take") == [0, None]


async def test_server_queue_bound_is_enforced(make_server):
    """A box keeps only the newest peer_queue_size messages, each for peer_queue_ttl seconds."""
    clock = Clock()
    client, ws = await make_server(
        broker=MemoryBroker(clock=clock), peer_queue_size=2, peer_queue_ttl=30
    )

    @ws.handler("count")
    async def count(message, socket):
        return await socket.enqueued()

    @ws.handler("take")
    async def take(message, socket):
        taken = await socket.consume()
        return None if taken is None else taken.data

    async with Client(str(client.make_url("/ws"))) as c:
        for n in range(5):
            await c.enqueue(n)
        assert await c.call("count") == 2
        assert await c.call("take") == 3
        clock.now += 31
        assert await c.call("count") == 0
        assert await c.call("take") is None


async def test_client_queue_bound_is_enforced(make_server):
    """The client's inbox keeps the newest peer_queue_size messages, each for peer_queue_ttl
    seconds of its clock, and counts what it dropped in peer_queue_dropped."""
    clock = Clock()
    client, ws = await make_server()
    async with Client(
        str(client.make_url("/ws")), peer_queue_size=2, peer_queue_ttl=30, clock=clock
    ) as c:
        assert c.client_id is not None
        for n in range(4):
            await ws.enqueue(c.client_id, n)
        await eventually(lambda: c.peer_queue_dropped == 2, "two dropped by size")
        assert c.enqueued == 2
        clock.now += 31
        assert c.enqueued == 0
        assert c.peer_queue_dropped == 4
        assert c.consume() is None


async def test_bad_queue_input_is_refused_without_harm(make_server, connect):
    """ws:enqueue without id is a bad frame; a garbage queued= on resume is ignored; data
    JSON cannot hold raises TypeError at the server API."""
    client, ws = await make_server()
    peer = await connect(client)
    await peer.send({"event": "ws:enqueue", "data": 1})
    assert (await peer.recv())["error"]["code"] == "bad_frame"
    resume = peer.welcome["data"]["resume"]
    again = await connect(client, params={"resume": resume, "queued": "-1x"})
    assert again.client_id == peer.client_id
    with pytest.raises(TypeError):
        await ws.enqueue(peer.client_id, object())


async def test_queues_survive_a_reconnect_to_another_process(servers, redis_prefix):  # noqa: F811
    """Messages queued for a client while it moves from process A to B (offline in between)
    reach it on B after the ones it had; what it queued on A is consumed on B, by filter."""
    a = await servers()
    b = Server("--broker", REDIS_URL, "--broker-prefix", redis_prefix, "--secret", "s")
    # A first; once A is gone the client rotates to B (not running yet, so it stays offline)
    c = Client([a.url, b.url], backoff_initial=0.01, backoff_max=0.1)
    try:
        await c.connect()
        client_id = c.client_id
        assert client_id is not None
        await c.enqueue({"kind": "order", "n": 1})
        await c.enqueue({"kind": "note", "n": 2})
        async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
            await publisher.enqueue(client_id, {"kind": "a"})
            await eventually(lambda: c.enqueued == 1, "the live message on A")
            await a.stop()
            await eventually(lambda: c.state == "reconnecting", "the client to go offline")
            await publisher.enqueue(client_id, {"kind": "b"})
            await publisher.enqueue(client_id, {"kind": "c"})
            await b.start()
            await eventually(lambda: c.enqueued == 3, "the two offline messages on B")
        assert c.client_id == client_id
        # the client said (queued=) it had "a": B dropped it from the box, kept the two it sent
        r = aioredis.from_url(REDIS_URL)
        assert await r.zcard(f"{redis_prefix}:queue:out:{client_id}") == 2
        await r.aclose()
        picked = c.consume(lambda data: data["kind"] == "c")
        assert picked is not None
        assert picked.data == {"kind": "c"}
        assert [q.data for q in (c.consume(), c.consume())] == [{"kind": "a"}, {"kind": "b"}]  # type: ignore[union-attr]
        assert c.consume() is None
        assert await c.call("inbox", {"kind": "note"}) == {"kind": "note", "n": 2}
        assert await c.call("inbox", {}) == {"kind": "order", "n": 1}
        assert await c.call("inbox", {}) is None
    finally:
        await c.close()
        await b.stop()
