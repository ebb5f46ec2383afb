"""Authentication, authorization, limits and hostile input, over real sockets."""

import asyncio
import base64
import contextlib
import json
import os
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import monument_ws
from monument_ws import Unauthorized, signals
from monument_ws.auth import AuthStep, Session, channel_of_session, channel_of_user
from monument_ws.client import Client
from monument_ws.publisher import Publisher
from tests.conftest import (
    DEADLINE,
    REDIS_URL,
    Connect,
    FakeClock,
    Peer,
    eventually,
    masked_text,
    open_raw,
    welcomed,
)


def token_parser() -> Any:
    async def parse(request: web.Request) -> Session:
        token = request.query.get("token") or request.headers.get("X-Token")
        if token is None:
            raise Unauthorized("no token")
        if not token.startswith("user-"):
            raise Unauthorized("bad token")
        return Session(user=token[5:], id=f"session-of-{token}", claims={"token": token})

    return parse


async def test_refused_session_closes_4401_with_reason_and_client_gives_up(make_server):
    """A refused session is closed with 4401 and its reason; the Python client does not retry."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    raw = await client.ws_connect("/ws")
    msg = await raw.receive(timeout=DEADLINE)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert (raw.close_code, msg.extra) == (4401, "no token")
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    url = str(client.make_url("/ws"))
    c = Client(url, sleep=record)
    with pytest.raises(monument_ws.ConnectionLost) as lost:
        await c.connect()
    assert str(lost.value) == f"could not connect to {url} (4401: no token)"  # the reason, said
    assert (c.state, c.close_code, c.close_reason) == ("closed", 4401, "no token")
    assert sleeps == []
    assert ws.stats.refused["session"] == 2


async def test_accepted_session_sets_user_and_reserved_channels(make_server, connect: Connect):
    """An accepted socket knows its user, is authenticated and joined its user/session channels."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    peer = await connect(client, params={"token": "user-ada"})
    data = peer.welcome["data"]
    assert data["stage"] == "authenticated"
    assert data["channels"]["user"]["channel"] == channel_of_user("ada")
    assert data["channels"]["session"]["channel"] == channel_of_session("session-of-user-ada")
    assert "session-of" not in data["channels"]["session"]["channel"]  # hashed, never the raw id
    await ws.publish_to_user("ada", "dm", "hi Ada")
    assert (await peer.recv())["data"] == "hi Ada"


async def test_other_sockets_cannot_subscribe_to_reserved_channels(make_server, connect: Connect):
    """Another user's (or a made-up) user or session channel is forbidden; publishing there too."""
    client, ws = await make_server()
    ws.session_parser = token_parser()
    bob = await connect(client, params={"token": "user-bob"})
    for i, channel in enumerate(
        [channel_of_user("ada"), channel_of_session("session-of-user-ada"), "$anything"]
    ):
        answer = await bob.request({"event": "ws:subscribe", "id": i, "data": {"channel": channel}})
        assert answer["error"]["code"] == "forbidden", channel
    own = await bob.request(
        {"event": "ws:subscribe", "id": "own", "data": {"channel": channel_of_user("bob")}}
    )
    assert own["event"] == "ws:subscribe"
    publish = {"channel": channel_of_user("bob"), "event": "x", "data": 1}
    answer = await bob.request({"event": "ws:publish", "id": "p", "data": publish})
    assert answer["error"]["code"] == "forbidden"


async def test_user_channel_reaches_a_users_sockets_on_two_processes(aiohttp_client, redis_prefix):
    """Two processes sharing Redis: a publish to a user reaches that user's socket on each."""
    from monument_ws.brokers.redis import RedisBroker

    clients, plugins = [], []
    for _ in range(2):
        app = web.Application()
        plugin = monument_ws.setup(
            app,
            websocket=True,
            bus=monument_ws.EventBus(),
            broker=RedisBroker(REDIS_URL, prefix=redis_prefix),
            upgrade_rate=0,
        )
        plugin.session_parser = token_parser()
        clients.append(await aiohttp_client(app))
        plugins.append(plugin)
    a = await welcomed(await clients[0].ws_connect("/ws", params={"token": "user-ada"}))
    b = await welcomed(await clients[1].ws_connect("/ws", params={"token": "user-ada"}))
    other = await welcomed(await clients[1].ws_connect("/ws", params={"token": "user-bob"}))
    await plugins[0].publish_to_user("ada", "dm", "both of you")
    assert (await a.recv())["data"] == "both of you"
    assert (await b.recv())["data"] == "both of you"
    assert (await other.request({"event": "ws:ping", "id": 1}))["event"] == "ws:ping"


async def test_a_publisher_reaches_a_users_and_a_sessions_sockets_and_knocks(
    make_server, connect: Connect, redis_prefix
):
    """Publisher has the server's broker-facing API: publish_to_user, publish_to_session and
    knock reach a socket on a server through Redis as ws.publish_to_user(...) etc. do."""
    from monument_ws.brokers.redis import RedisBroker

    client, ws = await make_server(
        broker=RedisBroker(REDIS_URL, prefix=redis_prefix),
        channels={"room:*": {"presence": True}},
    )
    ws.session_parser = token_parser()
    ada = await connect(client, params={"token": "user-ada"})
    joined = await ada.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "room:1"}})
    assert joined["event"] == "ws:subscribe"
    async with Publisher(REDIS_URL, broker_prefix=redis_prefix) as publisher:
        await publisher.publish_to_user("ada", "dm", "to the user")
        await publisher.publish_to_session("session-of-user-ada", "dm", "to the session")
        await publisher.knock("room:1")
    got = {
        (frame["event"], frame["channel"]): frame["data"]
        for frame in [await ada.recv() for _ in range(3)]
    }
    assert got == {
        ("dm", channel_of_user("ada")): "to the user",
        ("dm", channel_of_session("session-of-user-ada")): "to the session",
        ("ws:knock", "room:1"): {"channel": "room:1"},
    }


def expiring_app(make_server: Any, clock: FakeClock) -> Any:
    """A server on ``clock`` whose sessions expire 0.3 s after the upgrade; ws:auth stage
    ``refresh`` with token ``fresh`` extends a session by an hour."""

    async def start() -> Any:
        client, ws = await make_server(clock=clock, sleep=clock.sleep)

        async def parse(request: web.Request) -> Session:
            return Session(user="ada", expires_at=clock() + 0.3)

        async def authenticate(socket: Any, stage: str, data: Any) -> AuthStep:
            if stage == "refresh" and data.get("token") == "fresh":
                return AuthStep(
                    "authenticated", {"ok": True}, Session(user="ada", expires_at=clock() + 3600)
                )
            raise Unauthorized("wrong token")

        ws.session_parser = parse
        ws.authenticator = authenticate
        return client, ws

    return start


async def test_expired_credentials_close_with_4401(make_server, connect: Connect):
    """Credentials that expire without a refresh close the socket with 4401."""
    clock = FakeClock()
    client, ws = await expiring_app(make_server, clock)()
    peer = await connect(client)
    expiry = clock() + 0.3
    await eventually(lambda: clock.deadlines() == [expiry], "the watcher asleep until expiry")
    clock.advance(0.3)
    assert await peer.closed() == 4401
    assert ws.stats.refused["expired"] == 1


async def test_refreshing_in_time_keeps_the_socket(make_server, connect: Connect):
    """A ws:auth refresh before expiry moves the expiry; the socket outlives the first one."""
    clock = FakeClock()
    client, ws = await expiring_app(make_server, clock)()
    peer = await connect(client)
    first, refreshed = clock() + 0.3, clock() + 3600
    await eventually(lambda: clock.deadlines() == [first], "the watcher asleep until expiry")
    wrong = await peer.request(
        {"event": "ws:auth", "id": 1, "data": {"stage": "refresh", "token": "x"}}
    )
    assert wrong["error"]["code"] == "unauthorized"
    answer = await peer.request(
        {"event": "ws:auth", "id": 2, "data": {"stage": "refresh", "token": "fresh"}}
    )
    assert answer["data"] == {"stage": "authenticated", "data": {"ok": True}}
    clock.advance(0.6)  # past the first expiry: the watcher wakes and finds the refreshed one
    await eventually(
        lambda: clock.deadlines() == pytest.approx([refreshed]), "the watcher asleep again"
    )
    assert (await peer.request({"event": "ws:ping", "id": 3}))["event"] == "ws:ping"
    assert ws.stats.refused["expired"] == 0
    clock.advance(3600)  # the refreshed credentials expire in their turn
    assert await peer.closed() == 4401
    assert ws.stats.refused["expired"] == 1


def staged_server(make_server: Any, **settings: Any) -> Any:
    async def start() -> Any:
        client, ws = await make_server(require_auth=True, **settings)

        async def authenticate(socket: Any, stage: str, data: Any) -> AuthStep:
            if stage == "init":
                socket.state["nonce"] = "n-123"
                return AuthStep("challenge", {"nonce": "n-123"})
            if stage == "answer" and data.get("answer") == "sesame:" + socket.state.get(
                "nonce", ""
            ):
                return AuthStep(
                    "authenticated", {"welcome": data["user"]}, Session(user=data["user"])
                )
            raise Unauthorized("that is not the answer")

        ws.authenticator = authenticate
        ws.handler("echo")(lambda message, socket: message.data)
        return client, ws

    return start


async def test_staged_auth_happy_path(make_server, connect: Connect):
    """init → challenge → authenticated; before that only ws:auth/ping pass."""
    client, ws = await staged_server(make_server)()
    peer = await connect(client)
    assert peer.welcome["data"]["stage"] == "anonymous"
    early = await peer.request({"event": "echo", "id": 1, "data": 1})
    assert early["error"]["code"] == "unauthorized"
    assert (await peer.request({"event": "ws:ping", "id": 2}))["event"] == "ws:ping"
    challenge = await peer.request({"event": "ws:auth", "id": 3, "data": {"stage": "init"}})
    assert challenge["data"] == {"stage": "challenge", "data": {"nonce": "n-123"}}
    done = await peer.request(
        {
            "event": "ws:auth",
            "id": 4,
            "data": {"stage": "answer", "answer": "sesame:n-123", "user": "ada"},
        }
    )
    assert done["data"]["stage"] == "authenticated"
    assert (await peer.request({"event": "echo", "id": 5, "data": "now"}))["data"] == "now"
    await ws.publish_to_user("ada", "dm", "joined after auth")
    assert (await peer.recv())["data"] == "joined after auth"


async def test_staged_auth_wrong_answer(make_server, connect: Connect):
    """A wrong answer gets unauthorized and the socket stays unauthenticated."""
    client, ws = await staged_server(make_server)()
    peer = await connect(client)
    await peer.request({"event": "ws:auth", "id": 1, "data": {"stage": "init"}})
    wrong = await peer.request(
        {"event": "ws:auth", "id": 2, "data": {"stage": "answer", "answer": "guess"}}
    )
    assert wrong["error"] == {"code": "unauthorized", "message": "that is not the answer"}
    assert (await peer.request({"event": "echo", "id": 3}))["error"]["code"] == "unauthorized"
    assert ws.stats.refused["auth"] == 1


async def test_staged_auth_timeout_closes_1008(make_server, connect: Connect):
    """A socket that does not authenticate within auth_timeout is closed with 1008."""
    clock = FakeClock()
    client, ws = await staged_server(make_server, auth_timeout=0.2, sleep=clock.sleep)()
    peer = await connect(client)
    await eventually(lambda: clock.deadlines() == [clock() + 0.2], "the auth timeout running")
    clock.advance(0.2)
    assert await peer.closed() == 1008
    assert ws.stats.refused["auth_timeout"] == 1


async def test_authenticated_namespace(make_server, connect: Connect):
    """A namespace with authenticated=True refuses anonymous subscribers with unauthorized."""
    client, _ws = await make_server(channels={"members:*": {"authenticated": True}})
    peer = await connect(client)
    answer = await peer.request(
        {"event": "ws:subscribe", "id": 1, "data": {"channel": "members:1"}}
    )
    assert answer["error"]["code"] == "unauthorized"


async def test_too_big_frame_closes_1009_and_others_are_served(make_server, connect: Connect):
    """A 2 MB frame against a 1 MB limit closes that socket with 1009; others keep working."""
    client, ws = await make_server(max_message_size=1_048_576)
    ws.handler("echo")(lambda message, socket: message.data)
    bystander, sender = await connect(client), await connect(client)
    await sender.send(json.dumps({"event": "echo", "id": 1, "data": "x" * 2_000_000}))
    assert await sender.closed() == 1009
    assert (await bystander.request({"event": "echo", "id": 2, "data": "ok"}))["data"] == "ok"


async def test_frame_flood_is_rate_limited_then_closed_4029(make_server, connect: Connect):
    """10,000 frames at once: refused with rate_limited, then 4029; another client is fully served."""
    client, ws = await make_server(rate_limit=100, rate_burst=200, send_buffer_frames=100_000)
    ws.handler("echo")(lambda message, socket: message.data)
    flooder, calm = await connect(client), await connect(client)
    for i in range(10_000):
        if flooder.ws.closed:
            break
        await flooder.send({"event": "echo", "id": i, "data": i})
    codes = set()
    while True:
        msg = await flooder.ws.receive(timeout=DEADLINE)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            break
        frame = json.loads(msg.data)
        if frame["event"] == "ws:error":
            codes.add(frame["error"]["code"])
    assert flooder.ws.close_code == 4029
    assert codes == {"rate_limited"}
    answers = [await calm.request({"event": "echo", "id": i, "data": i}) for i in range(100)]
    assert [a["data"] for a in answers] == list(range(100))
    assert ws.stats.refused["frame_rate"] > 200


async def test_upgrade_flood_gets_503(make_server):
    """More upgrades per second from one address than allowed get HTTP 503 with Retry-After."""
    client, ws = await make_server(upgrade_rate=2)  # burst of 10
    statuses = []
    opened = []
    for _ in range(30):
        try:
            opened.append(await client.ws_connect("/ws"))
            statuses.append(101)
        except aiohttp.WSServerHandshakeError as exc:
            statuses.append(exc.status)
    assert statuses.count(503) >= 15
    assert ws.stats.refused["upgrade_rate"] == statuses.count(503)
    response = await client.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                                "Sec-WebSocket-Version": "13",
                                                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})  # fmt: skip
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    for ws_ in opened:
        await ws_.close()


async def test_sockets_per_ip_and_per_user(make_server, connect: Connect):
    """The per-address limit refuses with 503 at the upgrade; the per-user one closes with 4029."""
    client, ws = await make_server(max_sockets_per_ip=3, max_sockets_per_user=2)
    ws.session_parser = token_parser()
    ada = [await connect(client, params={"token": "user-ada"}) for _ in range(2)]
    third = await client.ws_connect("/ws", params={"token": "user-ada"})
    assert (await third.receive(timeout=DEADLINE)).type is aiohttp.WSMsgType.CLOSE
    assert third.close_code == 4029
    await connect(client, params={"token": "user-bob"})
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/ws", params={"token": "user-cyd"})
    assert info.value.status == 503
    assert ws.stats.refused["sockets_per_user"] == 1
    assert ws.stats.refused["sockets_per_ip"] == 1
    await ada[0].close()
    await eventually(lambda: len(ws.hub) == 2, "a slot freed")
    await connect(client, params={"token": "user-cyd"})


def test_client_ip_trusts_forwarded_for_only_from_proxies():
    """X-Forwarded-For counts only when the peer is a trusted proxy; the nearest untrusted hop wins."""
    from monument_ws.auth import client_ip

    assert client_ip("203.0.113.9", "1.2.3.4", ()) == "203.0.113.9"
    assert client_ip("10.0.0.2", "1.2.3.4", ("10.0.0.0/8",)) == "1.2.3.4"
    assert client_ip("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.7", ("10.0.0.0/8",)) == "1.2.3.4"
    assert client_ip("203.0.113.9", "1.2.3.4", ("10.0.0.0/8",)) == "203.0.113.9"


async def test_max_subscriptions_per_socket(make_server, connect: Connect):
    """Beyond max_subscriptions a socket gets rate_limited for new channels."""
    client, _ws = await make_server(max_subscriptions=3)
    peer = await connect(client)
    codes = []
    for i in range(5):
        answer = await peer.request(
            {"event": "ws:subscribe", "id": i, "data": {"channel": f"c{i}"}}
        )
        codes.append(answer.get("error", {}).get("code"))
    assert codes == [None, None, None, "rate_limited", "rate_limited"]


async def test_a_client_that_never_reads_is_closed_4008_within_its_bound(make_server):
    """A small-receive-buffer client that never reads: 4008, and the queue never passed its bound."""
    client, ws = await make_server(
        send_buffer_frames=500, send_buffer_bytes=256 * 1024, heartbeat=0
    )
    seen: list[Any] = []
    ws.bus.on(signals.SOCKET_CONNECTED, lambda event, *, socket, **_: seen.append(socket))
    _reader, writer = await open_raw(client, rcvbuf=4096)
    await eventually(lambda: len(seen) == 1, "the socket")
    # subscribe with a hand-masked frame, then never read again
    payload = json.dumps({"event": "ws:subscribe", "id": 1, "data": {"channel": "firehose"}})
    writer.write(masked_text(payload.encode()))
    await writer.drain()
    await eventually(lambda: ws.hub.channels() == {"firehose": 1}, "the subscription")
    socket = seen[0]
    for i in range(10_000):
        await ws.publish("firehose", "item", {"i": i, "pad": "p" * 1000})
        if socket.closed:
            break
    try:
        await eventually(lambda: len(ws.hub) == 0, "the slow consumer dropped")
        assert socket.closed
        assert ws.stats.slow_consumers == 1
        assert 0 < socket.buffer_peak_frames <= 500
        assert 0 < socket.buffer_peak_bytes <= 256 * 1024
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.fixed_dictionaries(
        {
            "event": st.one_of(
                st.text(max_size=20),
                st.sampled_from(
                    [
                        "ws:subscribe",
                        "ws:publish",
                        "ws:auth",
                        "ws:cancel",
                        "ws:presence",
                        "ws:result",
                        "echo",
                        "data:get:x",
                    ]
                ),
                json_values,
            )
        },
        optional={
            "id": st.one_of(st.integers(), st.text(max_size=70), json_values),
            "data": json_values,
            "call": json_values,
        },
    ).map(json.dumps),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(frames, min_size=1, max_size=10))
async def test_fuzzed_frames_never_crash_or_leak(fuzz_server, batch):
    """Arbitrary frames to a live server: every answer is a valid frame, no traceback, still alive."""
    peer: Peer = fuzz_server
    for frame in batch:
        await peer.send(frame)
    answer = await peer.request({"event": "ws:ping", "id": "alive?"})
    assert answer == {"event": "ws:ping", "id": "alive?", "data": {}}


@pytest.fixture
async def fuzz_server(make_server, connect: Connect, bus):
    client, ws = await make_server(max_bad_frames=10_000, rate_limit=0)
    ws.handler("echo")(lambda message, socket: message.data)
    bus.on("data:get:x", lambda event, **_: {"x": 1})
    peer = await connect(client)
    original = peer.recv

    async def checked_recv() -> dict[str, Any]:
        frame = await original()
        text = json.dumps(frame)
        assert "Traceback" not in text
        assert 'File "' not in text
        assert isinstance(frame.get("event"), str)
        if frame["event"] == "ws:error":
            assert set(frame["error"]) == {"code", "message"}
        return frame

    peer.recv = checked_recv  # type: ignore[method-assign]
    return peer


async def pace(peer: Any, interval: float, seconds: float) -> int:
    """Send echo requests one every ``interval`` s for ``seconds`` s, or until closed."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    sent = 0
    while loop.time() < until and not peer.ws.closed:
        try:
            await peer.ws.send_str(json.dumps({"event": "echo", "id": sent, "data": sent}))
        except ConnectionError:
            break
        sent += 1
        await asyncio.sleep(interval)
    return sent


async def collect(peer: Any, frames: list[dict[str, Any]]) -> None:
    """Read every frame until the socket closes."""
    while True:
        msg = await peer.ws.receive()
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return
        frames.append(json.loads(msg.data))


async def echo_peer(
    make_server: Any, connect: Connect, caplog: Any
) -> tuple[Any, Peer, list[dict[str, Any]], asyncio.Task[None]]:
    """A server with rate_limit=50/s and rate_burst=20, a peer, and a task reading its frames."""
    caplog.set_level("WARNING", logger="monument_ws")
    client, ws = await make_server(rate_limit=50, rate_burst=20, heartbeat=0)
    ws.handler("echo")(lambda message, socket: message.data)
    peer = await connect(client)
    frames: list[dict[str, Any]] = []
    return ws, peer, frames, asyncio.create_task(collect(peer, frames))


def flood_warnings(caplog: Any) -> tuple[list[str], list[str]]:
    """The server's warnings about a socket over the frame rate: (refusing, closing)."""
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "monument_ws"
        and r.levelname == "WARNING"
        and ("frames/s" in r.getMessage() or "refus" in r.getMessage())
    ]
    return [m for m in lines if "4029" not in m], [m for m in lines if "4029" in m]


async def test_a_sustained_flood_at_four_times_the_rate_is_closed_4029(
    make_server, connect: Connect, caplog: Any
):
    """Frames at ~4x rate_limit for seconds: refused with rate_limited, then closed with 4029,
    and the server warns once about the episode (and once about the close)."""
    ws, peer, frames, reading = await echo_peer(make_server, connect, caplog)
    sent = await pace(peer, 0.005, 6.0)  # stops early once the server closed the socket
    code = peer.ws.close_code
    if not peer.ws.closed:
        await peer.close()
    await asyncio.wait_for(reading, DEADLINE)
    refused = [f for f in frames if f["event"] == "ws:error"]
    refusing, closing = flood_warnings(caplog)
    assert code == 4029, (
        f"{sent} frames sent: {len(frames) - len(refused)} answered, {len(refused)} refused, "
        f"close code {code}, {len(refusing)} warnings about refusing frames"
    )
    assert refused
    assert {f["error"]["code"] for f in refused} == {"rate_limited"}
    # every refusal was answered but the last, which closed the socket (after the others)
    assert ws.stats.refused["frame_rate"] == len(refused) + 1
    assert len(refusing) == 1, f"{len(refusing)} warnings about one flood, e.g. {refusing[:3]}"
    assert len(closing) == 1, closing


async def test_a_client_just_below_the_rate_is_never_refused_or_closed(
    make_server, connect: Connect, caplog: Any
):
    """40 frames/s against rate_limit=50 for 2 s: every frame answered, no refusal, no close."""
    ws, peer, frames, reading = await echo_peer(make_server, connect, caplog)
    sent = await pace(peer, 0.025, 2.0)
    await eventually(lambda: len(frames) == sent, "every answer")
    assert not peer.ws.closed
    assert [f["data"] for f in frames] == list(range(sent))
    assert ws.stats.refused["frame_rate"] == 0
    assert flood_warnings(caplog) == ([], [])
    await peer.close()
    await asyncio.wait_for(reading, DEADLINE)


def auth_only_app(make_server: Any, clock: FakeClock) -> Any:
    """A server on ``clock`` without require_auth and without a session parser: stage
    ``login`` hands over a session expiring in ``data["ttl"]`` seconds."""

    async def start() -> Any:
        client, ws = await make_server(clock=clock, sleep=clock.sleep)

        async def authenticate(socket: Any, stage: str, data: Any) -> AuthStep:
            expires = clock() + float(data["ttl"])
            return AuthStep("authenticated", None, Session(user="ada", expires_at=expires))

        ws.authenticator = authenticate
        return client, ws

    return start


async def test_an_expiry_first_given_by_ws_auth_is_enforced(make_server, connect: Connect):
    """A socket that connected without a deadline and got an expiring session from ws:auth
    is closed with 4401 when it expires (its watcher starts with the session)."""
    clock = FakeClock()
    client, ws = await auth_only_app(make_server, clock)()
    peer = await connect(client)
    assert clock.deadlines() == []  # no deadline yet: no watcher task at all
    login = {"event": "ws:auth", "id": 1, "data": {"stage": "login", "ttl": 60}}
    assert (await peer.request(login))["data"]["stage"] == "authenticated"
    await eventually(lambda: clock.deadlines() == [clock() + 60], "the watcher asleep")
    clock.advance(60)
    assert await peer.closed() == 4401
    assert ws.stats.refused["expired"] == 1


async def test_a_refresh_that_brings_expiry_forward_takes_effect_at_once(
    make_server, connect: Connect
):
    """A new session that expires sooner than the one the watcher sleeps on is enforced at
    its own expiry, not the old one's."""
    clock = FakeClock()
    client, ws = await auth_only_app(make_server, clock)()
    peer = await connect(client)
    await peer.request({"event": "ws:auth", "id": 1, "data": {"stage": "login", "ttl": 3600}})
    await eventually(lambda: clock.deadlines() == [clock() + 3600], "asleep for an hour")
    await peer.request({"event": "ws:auth", "id": 2, "data": {"stage": "login", "ttl": 5}})
    await eventually(lambda: clock.deadlines() == [clock() + 5], "one watcher, on the new expiry")
    clock.advance(5)
    assert await peer.closed() == 4401
    assert ws.stats.refused["expired"] == 1


def closed_codes(bus: Any) -> list[int | None]:
    """The ``code=`` of every SOCKET_CLOSED the bus carries, in order."""
    codes: list[int | None] = []
    bus.on(signals.SOCKET_CLOSED, lambda event, *, code, **_: codes.append(code))
    return codes


async def test_closed_signal_reports_1009_for_a_too_big_frame(
    make_server, connect: Connect, bus: monument_ws.EventBus
):
    """The server closes with 1009 and SOCKET_CLOSED says 1009 (not the 1006 aiohttp records
    when it cannot read the client's answer)."""
    client, _ = await make_server(max_message_size=1024)
    codes = closed_codes(bus)
    peer = await connect(client)
    await peer.send(json.dumps({"event": "echo", "id": 1, "data": "x" * 4096}))
    assert await peer.closed() == 1009
    await eventually(lambda: bool(codes), "SOCKET_CLOSED")
    assert codes == [1009]


async def test_closed_signal_reports_the_clients_code(
    make_server, connect: Connect, bus: monument_ws.EventBus
):
    """A client closing with 1000 or with its own 4000 is reported with that code."""
    client, _ = await make_server()
    codes = closed_codes(bus)
    await (await connect(client)).close()
    await eventually(lambda: len(codes) == 1, "the first SOCKET_CLOSED")
    await (await connect(client)).ws.close(code=4000)
    await eventually(lambda: len(codes) == 2, "the second SOCKET_CLOSED")
    assert codes == [1000, 4000]


async def test_closed_signal_reports_the_servers_code(
    make_server, connect: Connect, bus: monument_ws.EventBus
):
    """A kick (4409) and too many bad frames (1008) are reported with the server's code, whatever
    the client answers; a connection dropped without a close frame is 1006."""
    client, ws = await make_server(max_bad_frames=1)
    codes = closed_codes(bus)
    kicked = await connect(client)
    await ws.kick(client_id=kicked.client_id, reason="bye")
    assert await kicked.closed() == 4409
    await eventually(lambda: len(codes) == 1, "the kicked socket's SOCKET_CLOSED")
    bad = await connect(client)
    await bad.send("not json")
    assert await bad.closed() == 1008
    await eventually(lambda: len(codes) == 2, "the bad socket's SOCKET_CLOSED")
    dropped = await connect(client)
    connection = dropped.ws._response.connection
    assert connection is not None
    assert connection.transport is not None
    connection.transport.abort()  # a reset: no close frame either way
    await eventually(lambda: len(codes) == 3, "the dropped socket's SOCKET_CLOSED")
    assert codes == [4409, 1008, 1006]
