"""setup(app): the webSocket config matrix, lifecycle, Origin policy, resume, shutdown."""

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

import monument_ws
from monument_ws import signals
from monument_ws.auth import ResumeTokens
from tests.conftest import Connect, eventually


@pytest.mark.parametrize(
    ("settings", "mounted"),
    [
        ({"websocket": False}, False),
        ({"websocket": True}, True),
        ({"websocket": "data"}, True),
        ({"websocket": "passthrough"}, True),
        ({"webSocket": "on"}, True),
        ({"webSockets": "false"}, False),
        ({"websocket": "0"}, False),
    ],
)
async def test_config_matrix_mounts_the_route_or_not(
    aiohttp_client, bus, settings, mounted, caplog
):
    """false (and "false"/"0") mounts no route; true, "on", "data" and "passthrough" mount /ws
    (any other value is refused: tests/test_config.py)."""
    app = web.Application()
    with caplog.at_level(logging.WARNING, "monument_ws.config"):
        monument_ws.setup(app, bus=bus, **settings)
    client = await aiohttp_client(app)
    if mounted:
        ws = await client.ws_connect("/ws")
        assert (await ws.receive_json(timeout=10))["event"] == "ws:welcome"
        await ws.close()
    else:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await client.ws_connect("/ws")
        assert info.value.status == 404


async def test_environment_false_turns_sockets_off(aiohttp_client, bus, monkeypatch):
    """MONUMENT_WS_WEBSOCKET=false read through Config.load means no socket route."""
    monkeypatch.setenv("MONUMENT_WS_WEBSOCKET", "false")
    import os

    app = web.Application()
    monument_ws.setup(app, monument_ws.Config.load(env=os.environ), bus=bus)
    client = await aiohttp_client(app)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/ws")


async def test_setup_twice_fails_loudly(bus):
    """A second setup() on the same app is a mistake and says so."""
    app = web.Application()
    monument_ws.setup(app, bus=bus, websocket=True)
    with pytest.raises(RuntimeError, match="already called"):
        monument_ws.setup(app, bus=bus, websocket=True)


async def test_broker_keyword_takes_a_url(bus):
    """``setup(app, broker="memory://")`` is the broker setting, not a Broker object."""
    from monument_ws.brokers.memory import MemoryBroker

    plugin = monument_ws.setup(web.Application(), bus=bus, broker="memory://")
    assert plugin.config.broker == "memory://"
    assert isinstance(plugin.broker, MemoryBroker)


async def test_welcome_and_subprotocol(make_server, connect: Connect):
    """The welcome carries client_id, resume, protocol 1; monument.v1 is accepted."""
    client, _ = await make_server(heartbeat=12)
    peer = await connect(client)
    data = peer.welcome["data"]
    assert data["protocol"] == 1
    assert data["heartbeat"] == 12
    assert data["client_id"]
    assert data["resume"]
    assert data["resumed"] is False
    assert peer.ws.protocol == "monument.v1"
    plain = await connect(client, protocols=())
    assert plain.ws.protocol is None
    assert plain.welcome["data"]["protocol"] == 1


async def test_resume_keeps_the_client_id(make_server, connect: Connect):
    """Reconnecting with the resume secret gives the same client_id; a wrong one a new id."""
    client, _ = await make_server()
    first = await connect(client)
    await first.close()
    again = await connect(client, params={"resume": first.welcome["data"]["resume"]})
    assert again.client_id == first.client_id
    assert again.welcome["data"]["resumed"] is True
    forged = first.welcome["data"]["resume"][:-2] + "xx"
    other = await connect(client, params={"resume": forged})
    assert other.client_id != first.client_id
    assert other.welcome["data"]["resumed"] is False
    chosen = await connect(client, params={"resume": f"{first.client_id}.1.abc"})
    assert chosen.client_id != first.client_id


def test_resume_secrets_expire():
    """A secret older than resume_ttl proves nothing (injectable clock)."""
    now = [1_000_000.0]
    tokens = ResumeTokens("key", ttl=60, clock=lambda: now[0])
    client_id, secret = tokens.issue()
    assert tokens.verify(secret) == client_id
    now[0] += 61
    assert tokens.verify(secret) is None
    assert ResumeTokens("other key").verify(secret) is None
    for junk in ["", "a", "a.b.c", "x" * 500, "a.-1.c"]:
        assert tokens.verify(junk) is None


async def test_shared_secret_resumes_on_another_process(aiohttp_client, connect: Connect):
    """Two servers with the same secret resume each other's clients."""
    apps = [web.Application(), web.Application()]
    for app in apps:
        monument_ws.setup(app, bus=monument_ws.EventBus(), websocket=True, secret="s3cret")
    one, two = [await aiohttp_client(app) for app in apps]
    first = await connect(one)
    again = await connect(two, params={"resume": first.welcome["data"]["resume"]})
    assert again.client_id == first.client_id


async def test_lifecycle_signals(make_server, connect: Connect, bus):
    """The bus announces socket connected and closed, with the socket."""
    seen = []
    bus.on(
        signals.SOCKET_CONNECTED,
        lambda event, *, socket, **_: seen.append((event, socket.client_id)),
    )
    bus.on(signals.SOCKET_CLOSED, lambda event, *, socket, code, **_: seen.append((event, code)))
    client, _ = await make_server()
    peer = await connect(client)
    await peer.close()
    await eventually(lambda: len(seen) == 2, "the closed signal")
    assert seen == [(signals.SOCKET_CONNECTED, peer.client_id), (signals.SOCKET_CLOSED, 1000)]


async def test_failing_lifecycle_receiver_does_not_break_the_socket(
    make_server, connect: Connect, bus
):
    """An app receiver that raises on connect is logged; the socket works."""

    def broken(event, **_):
        raise RuntimeError("app bug")

    bus.on(signals.SOCKET_CONNECTED, broken)
    client, ws = await make_server()
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    assert (await peer.request({"event": "echo", "id": 1, "data": 5}))["data"] == 5


async def test_foreign_origin_is_refused_at_the_upgrade(make_server, connect: Connect):
    """A browser Origin other than the host (and not allowed) gets HTTP 403, never a socket."""
    client, _ = await make_server(allowed_origins=["https://app.example"])
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws", headers={"Origin": "https://evil.example"})
    assert info.value.status == 403
    host = f"{client.host}:{client.port}"
    same = await connect(client, headers={"Origin": f"http://{host}"})
    allowed = await connect(client, headers={"Origin": "https://app.example"})
    no_origin = await connect(client)
    assert same.client_id
    assert allowed.client_id
    assert no_origin.client_id


async def test_shutdown_closes_sockets_with_1001(make_server, connect: Connect):
    """Stopping the app closes every socket with GOING_AWAY so clients reconnect elsewhere."""
    client, ws = await make_server()
    peers = [await connect(client) for _ in range(3)]
    await eventually(lambda: len(ws.hub) == 3, "three registered sockets")
    closing = asyncio.gather(*(p.closed() for p in peers))
    await client.server.close()
    assert await closing == [1001, 1001, 1001]
