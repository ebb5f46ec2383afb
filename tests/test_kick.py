"""Kicking a client id's, a user's, a session's or a channel's sockets, or all of them, with a
reason: close 4409, no reconnect. And the channel opened/closed signals a process emits."""

from typing import Any

import aiohttp
import pytest

from monument_ws import EventBus, signals
from monument_ws.channels.kick import Kick
from monument_ws.client import Client
from monument_ws.protocol import truncate
from monument_ws.publisher import Publisher
from tests.conftest import DEADLINE, REDIS_URL, Connect, Peer, eventually
from tests.test_cluster import servers  # noqa: F401  (the fixture of server processes)
from tests.test_security import token_parser


def recorder(log: list[Any], kind: str) -> Any:
    return lambda data: log.append((kind, data))


async def close_of(peer: Peer) -> tuple[int | None, str | None]:
    """Read until the close frame; return its code and reason."""
    while True:
        msg = await peer.ws.receive(timeout=DEADLINE)
        if msg.type is aiohttp.WSMsgType.CLOSE:
            return peer.ws.close_code, msg.extra
        assert msg.type is aiohttp.WSMsgType.TEXT, msg


async def test_kick_by_user_session_and_client_id(make_server, connect: Connect):
    """Each target closes exactly its sockets with 4409 and the reason; others stay open."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    ada_1 = await connect(client, params={"token": "user-ada"})
    ada_2 = await connect(client, params={"token": "user-ada"})
    bob = await connect(client, params={"token": "user-bob"})
    carol = await connect(client, params={"token": "user-carol"})
    dave = await connect(client, params={"token": "user-dave"})

    await ws.kick(user="ada", reason="account suspended")
    assert await close_of(ada_1) == (4409, "account suspended")
    assert await close_of(ada_2) == (4409, "account suspended")
    await ws.kick(session="session-of-user-bob", reason="logged out elsewhere")
    assert await close_of(bob) == (4409, "logged out elsewhere")
    await ws.kick(client_id=carol.client_id, reason="bye")
    assert await close_of(carol) == (4409, "bye")

    assert (await dave.request({"event": "ws:ping", "id": 1}))["data"] == {}
    await eventually(lambda: len(ws.hub) == 1, "only dave left")


async def test_python_client_does_not_reconnect_after_a_kick(make_server):
    """The client ends in state closed with 4409 and the reason, and never tries again."""
    client, ws = await make_server()
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    closed: list[Any] = []
    c = Client(str(client.make_url("/ws")), sleep=record)
    c.on("ws:close", closed.append)
    await c.connect()
    assert c.client_id is not None
    await ws.kick(client_id=c.client_id, reason="go away")
    await eventually(lambda: c.state == "closed", "the client to close")
    assert (c.close_code, c.close_reason) == (4409, "go away")
    assert closed == [{"code": 4409, "reason": "go away"}]
    assert sleeps == []
    await c.close()


def test_kick_needs_exactly_one_target_and_fits_the_reason():
    """No target or two targets is a ValueError; a long reason is cut at 123 bytes on a
    character boundary; a malformed order is not a kick."""
    with pytest.raises(ValueError, match="exactly one"):
        Kick.of(reason="x")
    with pytest.raises(ValueError, match="exactly one"):
        Kick.of(user="a", session="b")
    long = "é" * 100  # 200 bytes
    assert len(truncate(long).encode()) <= 123
    assert truncate(long) == "é" * 61
    kick = Kick.of(user="ada", reason=long)
    assert Kick.decode(kick.encode()) == kick
    for garbage in (b"not json", b"[]", b'{"kick": "everyone", "target": "x", "reason": ""}'):
        assert Kick.decode(garbage) is None
    with pytest.raises(ValueError, match="exactly one"):
        Kick.of(all=True, channel="room:1")
    with pytest.raises(ValueError, match="channel name"):
        Kick.of(channel="no spaces")
    with pytest.raises(ValueError, match="True or False"):
        Kick.of(all="yes")  # type: ignore[arg-type]
    for order in (Kick.of(all=True, reason="r"), Kick.of(channel="room:1")):
        assert Kick.decode(order.encode()) == order


async def test_bad_kick_targets_are_errors_before_anything_is_sent(make_server):
    """The server API refuses a bad target with ValueError and sends no order."""
    _, ws = await make_server()
    with pytest.raises(ValueError, match="channel name"):
        await ws.kick(channel="a b", reason="x")
    with pytest.raises(ValueError, match="exactly one"):
        await ws.kick(all=False, reason="x")


async def subscribe(peer: Peer, channel: str, request_id: int = 1) -> None:
    reply = await peer.request(
        {"event": "ws:subscribe", "id": request_id, "data": {"channel": channel}}
    )
    assert reply["event"] == "ws:subscribe", reply


async def test_kick_a_channel_closes_its_subscribers_only(make_server, connect: Connect):
    """kick(channel=) closes every subscriber of the channel with 4409 and the reason; a
    socket that never subscribed or left before stays open."""
    client, ws = await make_server()
    one, two, other, gone = [await connect(client) for _ in range(4)]
    for peer in (one, two, gone):
        await subscribe(peer, "room:1")
    await subscribe(other, "room:2")
    await gone.request({"event": "ws:unsubscribe", "id": 2, "data": {"channel": "room:1"}})

    await ws.kick(channel="room:1", reason="room closed")
    assert await close_of(one) == (4409, "room closed")
    assert await close_of(two) == (4409, "room closed")
    for peer in (other, gone):
        assert (await peer.request({"event": "ws:ping", "id": 9}))["data"] == {}
    await eventually(lambda: len(ws.hub) == 2, "two sockets left")


async def test_kick_all_closes_every_socket_of_the_process(make_server, connect: Connect):
    """kick(all=True): every socket, subscribed or not, gets 4409 and the reason."""
    client, ws = await make_server()
    peers = [await connect(client) for _ in range(3)]
    await subscribe(peers[0], "room:1")
    await ws.kick(all=True, reason="maintenance")
    for peer in peers:
        assert await close_of(peer) == (4409, "maintenance")
    await eventually(lambda: len(ws.hub) == 0, "no socket left")


async def test_kick_all_and_a_channel_on_two_processes(servers, redis_prefix):  # noqa: F811
    """Through Redis: kick(channel=) closes that channel's subscribers on both processes and
    no one else; kick(all=True) then closes every remaining socket on both. Nobody reconnects."""
    a, b = await servers(), await servers()
    in_room = [Client(url, backoff_initial=0.01, backoff_max=0.05) for url in (a.url, b.url)]
    others = [Client(url, backoff_initial=0.01, backoff_max=0.05) for url in (a.url, b.url)]
    try:
        for c in (*in_room, *others):
            await c.connect()
        for c in in_room:
            await c.subscribe("room:1", lambda message: None)
        async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
            await publisher.kick(channel="room:1", reason="room closed")
            await eventually(lambda: all(c.state == "closed" for c in in_room), "room kicked")
            for c in in_room:
                assert (c.close_code, c.close_reason) == (4409, "room closed")
            for c in others:
                assert await c.call("echo", "still here") == "still here"
            await publisher.kick(all=True, reason="maintenance")
            await eventually(lambda: all(c.state == "closed" for c in others), "all kicked")
        for c in others:
            assert (c.close_code, c.close_reason) == (4409, "maintenance")
    finally:
        for c in (*in_room, *others):
            await c.close()


def channel_log(bus: EventBus) -> list[tuple[str, str]]:
    """Every channel opened/closed signal the bus carries, in order."""
    log: list[tuple[str, str]] = []
    for event in (signals.CHANNEL_OPENED, signals.CHANNEL_CLOSED):
        bus.on(event, lambda event, *, channel, **_: log.append((event, channel)))
    return log


OPENED, CLOSED = signals.CHANNEL_OPENED, signals.CHANNEL_CLOSED


async def test_channel_opened_and_closed_once_per_transition(
    make_server, connect: Connect, bus: EventBus
):
    """Two sockets subscribing to a channel open it once; it closes once, when the last one
    leaves: by unsubscribing, or by its socket going away. It can open again."""
    client, _ = await make_server()
    log = channel_log(bus)
    one, two = await connect(client), await connect(client)
    await subscribe(one, "room:1")
    await subscribe(two, "room:1")
    await subscribe(two, "room:1", 2)  # subscribing again is not a new transition
    assert log == [(OPENED, "room:1")]
    await one.request({"event": "ws:unsubscribe", "id": 3, "data": {"channel": "room:1"}})
    assert log == [(OPENED, "room:1")]
    await two.ws.close()  # the last subscriber drops its socket
    await eventually(lambda: len(log) == 2, "the channel to close")
    assert log == [(OPENED, "room:1"), (CLOSED, "room:1")]
    await subscribe(one, "room:1", 4)
    await one.request({"event": "ws:unsubscribe", "id": 5, "data": {"channel": "room:1"}})
    assert log == [(OPENED, "room:1"), (CLOSED, "room:1")] * 2


async def test_a_kicked_channel_closes_once(make_server, connect: Connect, bus: EventBus):
    """Kicking a channel's two subscribers emits one close for it; the other channel stays."""
    client, ws = await make_server()
    log = channel_log(bus)
    one, two, other = await connect(client), await connect(client), await connect(client)
    for peer in (one, two):
        await subscribe(peer, "room:1")
    await subscribe(other, "room:2")
    await ws.kick(channel="room:1", reason="room closed")
    for peer in (one, two):
        assert await close_of(peer) == (4409, "room closed")
    await eventually(lambda: (CLOSED, "room:1") in log, "room:1 to close")
    await eventually(lambda: len(ws.hub) == 1, "the kicked sockets to be gone")
    assert sorted(log) == [(CLOSED, "room:1"), (OPENED, "room:1"), (OPENED, "room:2")]


async def test_a_malformed_control_message_is_ignored(make_server, connect: Connect):
    """Garbage on the control path never closes a socket nor crashes the hub."""
    client, ws = await make_server()
    peer = await connect(client)
    await ws.broker.control(b"\xff not a kick")
    assert (await peer.request({"event": "ws:ping", "id": 1}))["data"] == {}


async def test_kick_a_user_with_two_sockets_on_two_processes(servers, redis_prefix):  # noqa: F811
    """A kick sent through Redis closes the user's sockets on both server processes with the
    reason; neither client reconnects, and another user's client stays connected."""
    from monument_ws.app_template.app.auth import make_token

    a, b = await servers(), await servers()
    token = {"Authorization": f"Bearer {make_token('ada')}"}
    events: dict[str, list[Any]] = {"a": [], "b": []}
    on_a = Client(a.url, headers=token, backoff_initial=0.01, backoff_max=0.05)
    on_b = Client(b.url, headers=token, backoff_initial=0.01, backoff_max=0.05)
    bystander = Client(b.url, headers={"Authorization": f"Bearer {make_token('bob')}"})
    for name, c in (("a", on_a), ("b", on_b)):
        c.on("ws:offline", recorder(events[name], "offline"))
        c.on("ws:close", recorder(events[name], "close"))
    try:
        for c in (on_a, on_b, bystander):
            await c.connect()
        async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
            await publisher.kick(user="ada", reason="account suspended")
        await eventually(lambda: on_a.state == on_b.state == "closed", "both sockets closed")
        for c in (on_a, on_b):
            assert (c.close_code, c.close_reason) == (4409, "account suspended")
        # ws:close is emitted from a task the client starts as it turns "closed": wait for it.
        await eventually(lambda: bool(events["a"] and events["b"]), "ws:close on both clients")
        # "closed" is final: a client that meant to reconnect would be "reconnecting" and
        # would have said ws:offline first
        for name in ("a", "b"):
            assert events[name] == [("close", {"code": 4409, "reason": "account suspended"})]
        assert on_a.state == on_b.state == "closed"
        assert await bystander.call("echo", "still here") == "still here"
    finally:
        for c in (on_a, on_b, bystander):
            await c.close()
