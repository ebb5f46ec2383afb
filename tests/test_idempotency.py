"""Idempotent publishes, over real sockets and a real Redis: ``ws:publish``'s
``idempotency_key``, the server API's and the Python client's ``idempotency_key``; a retry
with the same key publishes once, on whichever process either ran; the window is bounded in
time and count; a publish that timed out while Redis was paused is not published twice by its
retry."""

import asyncio
import signal
from typing import Any

import pytest

from monument_ws.brokers import Idempotency, MemoryBroker
from monument_ws.brokers.base import Broker
from monument_ws.client import Client, Message
from monument_ws.protocol.errors import BadFrame, Timeout
from monument_ws.publisher import Publisher
from tests.conftest import REDIS_URL, Connect, Peer, eventually
from tests.test_channels import subscribe
from tests.test_cluster import own_redis  # noqa: F401 - the fixture of a killable redis-server

CHAT = {"chat:*": {"publish": "subscribers"}}


async def publish(peer: Peer, channel: str, data: Any, request_id: int, **extra: Any) -> Any:
    return await peer.request(
        {
            "event": "ws:publish",
            "id": request_id,
            "data": {"channel": channel, "event": "said", "data": data, **extra},
        }
    )


async def test_a_retried_ws_publish_publishes_once_on_any_process(
    make_server, connect: Connect, broker_settings
):
    """The same key on the same channel, through this server or the other, publishes once and
    answers the first offset and epoch; another key, or the same key on another channel, is
    another publication."""
    a, _ = await make_server(channels=CHAT, secret="s", **broker_settings)
    b = a
    if "broker" in broker_settings:
        b, _ = await make_server(channels=CHAT, secret="s", **broker_settings)
    near, far = await connect(a), await connect(b)
    for peer in (near, far):
        await subscribe(peer, "chat:1")
        await subscribe(peer, "chat:2")
    got: dict[str, list[tuple[str, Any]]] = {"near": [], "far": []}
    async with Client(str(a.make_url("/ws"))) as on_a, Client(str(b.make_url("/ws"))) as on_b:
        for name, client in (("near", on_a), ("far", on_b)):
            seen = got[name]

            def record(message: Message, seen: list[tuple[str, Any]] = seen) -> None:
                seen.append((message.channel, message.data))

            for channel in ("chat:1", "chat:2"):
                await client.subscribe(channel, record)
        first = await publish(near, "chat:1", "once", 10, idempotency_key="k1")
        assert set(first["data"]) == {"offset", "epoch"}
        again = await publish(far, "chat:1", "once more", 11, idempotency_key="k1")
        assert again["data"] == first["data"]
        other = await publish(near, "chat:1", "other", 12, idempotency_key="k2")
        assert other["data"]["offset"] == first["data"]["offset"] + 1
        elsewhere = await publish(far, "chat:2", "elsewhere", 13, idempotency_key="k1")
        assert elsewhere["data"]["offset"] == 1
        plain = await publish(near, "chat:1", "plain", 14)
        assert plain["data"]["offset"] == first["data"]["offset"] + 2
        expected = [
            ("chat:1", "once"),
            ("chat:1", "other"),
            ("chat:2", "elsewhere"),
            ("chat:1", "plain"),
        ]
        await eventually(lambda: all(len(g) == 4 for g in got.values()), "every publication")
        assert got == {"near": expected, "far": expected}


@pytest.mark.parametrize("key", ["", "x" * 65, 7, True, "line\nbreak", ["k"], {"k": 1}])
async def test_a_bad_idempotency_key_is_bad_frame(make_server, connect: Connect, key):
    server, ws = await make_server(channels=CHAT)
    peer = await connect(server)
    await subscribe(peer, "chat:1")
    answer = await publish(peer, "chat:1", "x", 20, idempotency_key=key)
    assert answer["event"] == "ws:error"
    assert answer["error"]["code"] == "bad_frame"
    assert "idempotency_key" in answer["error"]["message"]
    assert (await publish(peer, "chat:1", "fine", 21, idempotency_key="x" * 64))["data"][
        "offset"
    ] == 1
    assert ws.stats.publish_errors == 0


async def test_the_server_api_the_publisher_and_the_python_client_take_a_key(
    make_server, redis_prefix
):
    """``ws.publish``, a ``Publisher`` on the same Redis and ``Client.publish`` share the keys
    of a channel; a bad key is TypeError on the server side, bad_frame for the client."""
    server, ws = await make_server(channels=CHAT, broker=REDIS_URL, broker_prefix=redis_prefix)
    received: list[Message] = []
    async with Client(str(server.make_url("/ws"))) as client:
        await client.subscribe("chat:1", received.append)
        first = await ws.publish("chat:1", "said", 1, idempotency_key="api")
        async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
            assert await publisher.publish("chat:1", "said", 1, idempotency_key="api") == first
            with pytest.raises(TypeError, match="idempotency_key"):
                await publisher.publish("chat:1", "said", 1, idempotency_key="")
        assert await client.publish("chat:1", "said", 2, idempotency_key="c") == first + 1
        assert await client.publish("chat:1", "said", 2, idempotency_key="c") == first + 1
        assert await client.publish("chat:1", "said", 1, idempotency_key="api") == first
        with pytest.raises(BadFrame):
            await client.publish("chat:1", "said", 3, idempotency_key="k" * 65)
        with pytest.raises(TypeError, match="idempotency_key"):
            await ws.publish("chat:1", "said", 1, idempotency_key="a\x00b")
        await eventually(lambda: len(received) == 2, "both publications")
        assert [m.data for m in received] == [1, 2]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def keyed(
    broker: Broker, channel: str, data: Any, key: str, window: float = 10.0, limit: int = 3
) -> tuple[int, str]:
    return await broker.publish(
        channel,
        "said",
        data,
        history_size=10,
        history_ttl=60,
        idempotency=Idempotency(key, window, limit),
    )


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_channel_remembers_keys_for_the_window_and_at_most_limit_of_them(
    kind, redis_prefix
):
    """Past its window a key publishes again; beyond ``limit`` keys the oldest is forgotten;
    the memory broker keeps nothing once every key expired."""
    from monument_ws.brokers.redis import RedisBroker

    clock = Clock()
    broker: Broker = (
        MemoryBroker(clock=clock)
        if kind == "memory"
        else RedisBroker(REDIS_URL, prefix=redis_prefix, clock=clock)
    )
    await broker.start()
    try:
        first = await keyed(broker, "room", 1, "a")
        assert await keyed(broker, "room", 1, "a") == first
        clock.now += 10.5
        second = await keyed(broker, "room", 1, "a")
        assert second[0] == first[0] + 1
        for key in ("b", "c", "d"):  # "a" is now the oldest of four: forgotten
            await keyed(broker, "room", key, key)
        fifth = await keyed(broker, "room", 1, "a")
        assert fifth[0] == second[0] + 4
        assert (await keyed(broker, "room", "d", "d"))[0] == fifth[0] - 1
        if isinstance(broker, MemoryBroker):
            assert broker.stats()["idempotency_keys"] == 3
            clock.now += 11
            await keyed(broker, "other", 0, "z", window=1)
            clock.now += 2
            await broker.publish("other", "said", 0, history_size=0, history_ttl=0)
            await keyed(broker, "third", 0, "y")  # any keyed publish drops expired keys
            assert broker.stats()["idempotency_keys"] == 1
    finally:
        await broker.stop()


async def test_a_publish_that_timed_out_while_redis_was_paused_is_not_published_twice(
    make_server,
    own_redis,  # noqa: F811
):
    """Redis paused (SIGSTOP): the publish times out at the client though Redis runs it once it
    continues. The client's retry with the same key gets the original offset; the subscriber
    gets the message once."""
    await own_redis()
    server, _ = await make_server(channels=CHAT, broker=own_redis.url)
    received: list[Message] = []
    url = str(server.make_url("/ws"))
    async with Client(url) as subscriber, Client(url, call_timeout=0.5) as publisher:
        await subscriber.subscribe("chat:1", received.append)
        await publisher.subscribe("chat:1", lambda message: None)
        before = await publisher.publish("chat:1", "said", "before", idempotency_key="m0")
        own_redis.signal(signal.SIGSTOP)
        try:
            with pytest.raises(Timeout):
                await publisher.publish("chat:1", "said", "paused", idempotency_key="m1")
        finally:
            own_redis.signal(signal.SIGCONT)
        await eventually(lambda: len(received) == 2, "the publication Redis ran once it continued")
        retried = await publisher.publish("chat:1", "said", "paused", idempotency_key="m1")
        assert retried == before + 1 == received[1].offset
        after = await publisher.publish("chat:1", "said", "after", idempotency_key="m2")
        assert after == retried + 1
        await eventually(lambda: len(received) == 3, "the next publication")
        await asyncio.sleep(0)
        assert [m.data for m in received] == ["before", "paused", "after"]
