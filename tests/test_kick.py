"""Kicking a client id, a user's or a session's sockets with a reason: close 4409, no reconnect."""

from typing import Any

import aiohttp
import pytest

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
