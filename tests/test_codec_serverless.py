"""The serverless-sockets endpoint over real sockets: its client (tests/ss_client.py, written from
the documented format) against a server serving ``endpoints={"/ss": "serverless-sockets"}``
beside the native route, sharing handlers, plugs, channels, auth and limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monument_ws import MonumentWS
from monument_ws.brokers.base import Publication
from monument_ws.channels.fanout import Fanout, Members
from monument_ws.config import Config
from monument_ws.connection import auth
from monument_ws.protocol import channel_push, codecs
from monument_ws.protocol.codecs.serverless_sockets import (
    MAX_HELD_BYTES,
    MAX_PENDING,
    ServerlessSockets,
    Session,
    diff,
)
from monument_ws.protocol.errors import ConfigError, Unauthorized
from monument_ws.protocol.yields import broadcast, custom, error, sync
from monument_ws.yields import not_found
from tests import ss_client
from tests.conftest import Connect
from tests.ss_client import SSPeer

ENDPOINTS = {"/ss": "serverless-sockets"}


async def ss_connect(client: Any, path: str = "/ss", **kwargs: Any) -> SSPeer:
    return SSPeer(await client.ws_connect(path, **kwargs))


def handlers(ws: MonumentWS) -> None:
    @ws.handler("echo")
    async def echo(message: Any, socket: Any) -> Any:
        return message.data

    @ws.handler("count")
    async def count(message: Any, socket: Any) -> AsyncIterator[Any]:
        for i in range(message.data["to"]):
            yield i
        yield custom(2, {"done": True})

    @ws.handler("shout")
    async def shout(message: Any, socket: Any) -> AsyncIterator[Any]:
        yield broadcast({"said": message.data})

    @ws.handler("fail")
    async def fail(message: Any, socket: Any) -> AsyncIterator[Any]:
        yield error("bad_frame", "send a move")

    @ws.handler("gone")
    async def gone(message: Any, socket: Any) -> AsyncIterator[Any]:
        yield not_found("no such board")

    @ws.handler("whoami")
    async def whoami(message: Any, socket: Any) -> Any:
        return {"user": socket.session.user}


async def test_a_handler_call_and_its_reply_stream_and_custom_type(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await ss_connect(client)
    await peer.send("echo", {"x": [1, "é"]})
    got = await peer.recv()  # no welcome: the format has none
    assert (got.type, got.event, got.payload) == (ss_client.MESSAGE, "echo", {"x": [1, "é"]})
    await peer.send("count", {"to": 3})
    frames = [await peer.recv() for _ in range(4)]
    assert [(f.type, f.event, f.payload) for f in frames] == [
        (0, "count", 0),
        (0, "count", 1),
        (0, "count", 2),
        (ss_client.CUSTOM_1 + 1, "count", {"done": True}),
    ]
    await peer.send("echo", None)  # a null reply is dropped: the next frame answers the ping
    await peer.send("echo", "after")
    assert (await peer.recv()).payload == "after"


async def test_a_plug_answers_on_the_endpoint(make_server, tmp_path: Path):
    plugs = tmp_path / "plugs"
    (plugs / "chat").mkdir(parents=True)
    (plugs / "chat" / "send.py").write_text(
        "async def handle(message, socket):\n    yield {'got': message.data}\n"
    )
    client, _ws = await make_server(endpoints=ENDPOINTS, plugs=str(plugs))
    peer = await ss_connect(client)
    await peer.send("chat/send", "hi")
    got = await peer.recv()
    assert (got.type, got.event, got.payload) == (0, "chat/send", {"got": "hi"})


async def test_not_found_and_errors(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await ss_connect(client)
    await peer.send("no/such/event", {"a": 1})
    got = await peer.recv()
    assert (got.type, got.event, got.payload["code"]) == (
        ss_client.NOT_FOUND,
        "no/such/event",
        "not_found",
    )
    await peer.send("fail")
    got = await peer.recv()
    assert (got.type, got.event, got.payload) == (
        ss_client.ERROR,
        "fail",
        {"code": "bad_frame", "message": "send a move"},
    )
    await peer.send("gone")
    got = await peer.recv()
    assert (got.type, got.event, got.payload["message"]) == (5, "gone", "no such board")


async def test_a_broadcast_reaches_other_serverless_and_native_sockets(make_server, connect):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    sender, other = await ss_connect(client), await ss_connect(client)
    native = await connect(client)
    await sender.send("echo", 1)  # both serverless sockets are served before the broadcast
    await other.send("echo", 1)
    assert (await sender.recv()).payload == (await other.recv()).payload == 1
    await sender.send("shout", "hello")
    for peer in (sender, other):
        got = await peer.recv()
        assert (got.type, got.event, got.payload) == (
            ss_client.BROADCAST,
            "shout",
            {"said": "hello"},
        )
    assert await native.recv() == {"event": "shout", "data": {"said": "hello"}}


async def test_sync_streams_rebuild_the_object_as_its_browser_client_does(make_server):
    """Each diff rebuilds the next whole frame; the first is against the request frame."""
    client, ws = await make_server(endpoints=ENDPOINTS)
    states: list[Any] = [{"a": 2}, {"a": 2, "b": "xy"}, {"a": 20}]
    ws.handler("sync")(_states_handler(states))
    peer = await ss_connect(client)
    await peer.send("sync", {"a": 1})
    diffs = []
    for state in states:
        got = await peer.recv()
        assert (got.type, got.event, got.payload) == (ss_client.SYNC, "sync", state)
        diffs.append(got.diff)
    assert diffs == [
        [[0], [4, 3], [15, 50]],
        [[9], [3, 26], [16, 44, 34, 98, 34, 58, 34, 120, 121, 34, 125]],
        [[-8], [3, 18], [16, 48, 125]],
    ]
    # the format diffs whole frames itself: the server kept no SYNC object for this socket
    (socket,) = list(ws.hub)
    assert socket.sync_state().size == 0


def _states_handler(states: list[Any]) -> Any:
    async def handle(message: Any, socket: Any) -> AsyncIterator[Any]:
        for state in states:
            yield sync(state)

    return handle


async def test_sync_keeps_changed_zero_bytes(make_server):
    """A frame shrinking from 256 to 255 bytes changes header byte 2 to 0: serverless-sockets'
    server dropped that zero and its client read a wrong length; here both frames rebuild."""
    client, ws = await make_server(endpoints=ENDPOINTS)
    big, smaller = {"s": "x" * 238}, {"s": "y" * 237}
    ws.handler("sync")(_states_handler([big, smaller]))
    peer = await ss_connect(client)
    await peer.send("sync")
    first = await peer.recv()
    second = await peer.recv()
    assert len(first.raw) == 256
    assert len(second.raw) == 255
    assert (first.payload, second.payload) == (big, smaller)
    assert second.diff[1][:3] == [2, 0, 255]


def test_the_diff_of_equal_frames_and_of_growth_past_the_end():
    assert diff(b"abc", b"abc") == [[0]]
    assert diff(b"ab", b"abcd") == [[2], [2, 99, 100]]
    assert diff(b"a\x01c", b"a\x00c") == [[0], [1, 0]]
    held = ss_client.sync_incoming(b"abcdef", diff(b"abcdef", b"aXc"))
    assert held == b"aXc"


async def test_the_payload_limit_is_the_real_size_not_the_declared_one(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS, max_message_size=1000)
    handlers(ws)
    peer = await ss_connect(client)
    frame = ss_client.encode("echo", "x" * 2000)
    await peer.ws.send_bytes((20).to_bytes(4, "big") + frame[4:])  # declares 20 bytes
    code, _ = await peer.closed()
    assert code == 1009


async def test_a_text_frame_closes_with_1003_and_a_reason(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS)
    peer = await ss_connect(client)
    await peer.ws.send_str('{"event": "echo"}')
    code, reason = await peer.closed()
    assert code == 1003
    assert "text frames are not supported" in reason


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"\x00\x00\x00", "truncated header"),
        ((9).to_bytes(4, "big") + b"\x00\x04echo", "declares 9 bytes but the frame has 10"),
        ((99_999).to_bytes(4, "big") + b"\x00\x04echo", "declares 99999"),
        ((8).to_bytes(4, "big") + b"\x00\x09ec", "run past the frame's end"),
        ((9).to_bytes(4, "big") + b"\x00\x01e{x", "payload JSON"),
        ((8).to_bytes(4, "big") + b"\x00\x02\xff\xfe", "UTF-8"),
    ],
)
async def test_a_lying_or_truncated_header_is_refused_and_the_socket_goes_on(
    make_server, raw: bytes, says: str
):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await ss_connect(client)
    await peer.ws.send_bytes(raw)
    got = await peer.recv()
    assert (got.type, got.payload["code"]) == (ss_client.ERROR, "bad_frame")
    assert says in got.payload["message"]
    await peer.send("echo", "still here")
    assert (await peer.recv()).payload == "still here"


async def test_bad_frames_in_a_row_close_with_1008(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS, max_bad_frames=3)
    peer = await ss_connect(client)
    for _ in range(3):
        await peer.ws.send_bytes(b"\x00")
    for _ in range(2):
        assert (await peer.recv()).type == ss_client.ERROR
    code, _ = await peer.closed()
    assert code == 1008


async def test_the_session_parser_runs_at_the_upgrade(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)

    async def parse(request: web.Request) -> auth.Session:
        token = request.query.get("token")
        if token is None:
            raise Unauthorized("no token")
        return auth.Session(user=token)

    ws.session_parser = parse
    refused = await ss_connect(client, "/ss")
    assert await refused.closed() == (4401, "no token")
    peer = await ss_connect(client, "/ss?token=ada")
    await peer.send("whoami")
    assert (await peer.recv()).payload == {"user": "ada"}


async def test_a_channel_shared_with_a_native_socket(make_server, connect: Connect):
    client, _ws = await make_server(
        endpoints=ENDPOINTS, channels={"chat:*": {"publish": "subscribers"}}
    )
    peer = await ss_connect(client)
    native = await connect(client)
    await peer.send("ws:subscribe", {"channel": "chat:lobby"})
    got = await peer.recv()
    assert (got.type, got.event, got.payload["channel"]) == (0, "ws:subscribe", "chat:lobby")
    reply = await native.request(
        {"event": "ws:subscribe", "id": 1, "data": {"channel": "chat:lobby"}}
    )
    assert "error" not in reply
    await peer.send("ws:publish", {"channel": "chat:lobby", "event": "say", "data": "from ss"})
    got = await peer.recv()  # the publication (to itself too), then the publish reply
    second = await peer.recv()
    publication, answer = (got, second) if got.type == ss_client.BROADCAST else (second, got)
    assert (publication.event, publication.payload) == (
        "say",
        {"channel": "chat:lobby", "data": "from ss", "offset": 1},
    )
    assert (answer.event, answer.payload["offset"]) == ("ws:publish", 1)
    assert await native.recv() == {
        "event": "say",
        "channel": "chat:lobby",
        "data": "from ss",
        "offset": 1,
    }
    await native.request(
        {
            "event": "ws:publish",
            "id": 2,
            "data": {"channel": "chat:lobby", "event": "say", "data": "from native"},
        }
    )
    got = await peer.recv()
    assert (got.type, got.payload["data"]) == (ss_client.BROADCAST, "from native")


async def test_the_endpoint_comes_from_config_and_an_unknown_format_is_one_line():
    assert Config.load({"endpoint": ["/ss=serverless-sockets"]}).endpoints == (
        ("/ss", "serverless-sockets"),
    )
    env = {"MONUMENT_WS_ENDPOINTS": "/a=serverless-sockets,/b=serverless-sockets"}
    assert Config.load(env=env).endpoints == (
        ("/a", "serverless-sockets"),
        ("/b", "serverless-sockets"),
    )
    with pytest.raises(ConfigError) as caught:
        Config.load({"endpoints": {"/x": "socket.io"}})
    assert "\n" not in str(caught.value)
    assert "unknown wire format 'socket.io' for /x; known: serverless-sockets" in str(caught.value)
    with pytest.raises(ConfigError):
        Config.load({"endpoints": {"ss": "serverless-sockets"}})


async def test_an_endpoint_on_the_main_path_is_refused():
    from monument_ws import setup

    with pytest.raises(ConfigError, match="main socket path"):
        setup(web.Application(), websocket=True, endpoints={"/ws": "serverless-sockets"})


class _FakeSender:
    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self.wire_format = None if codec is None else codec.codec

    def gather(self) -> bool:
        return False


class _FakeOutbound:
    def __init__(self, codec: Any) -> None:
        self.sender = _FakeSender(codec)
        self.wires: list[bytes] = []

    def offer(self, frame: bytes, wire: bytes | None = None, kind: int = 0) -> bool:
        assert wire is not None
        self.wires.append(wire)
        return True


class _FakeSocket:
    client_id = "c"

    def __init__(self, codec: Any) -> None:
        self.outbound = _FakeOutbound(codec)


class _CountingCodec(ServerlessSockets):
    encoded = 0

    def encode_shared(self, frame: bytes) -> bytes:
        _CountingCodec.encoded += 1
        return super().encode_shared(frame)


async def test_fanout_encodes_once_per_codec_not_per_socket():
    codec = _CountingCodec()
    sockets = [_FakeSocket(codec.session() if i % 2 else None) for i in range(1000)]
    members: Members = {"room": dict.fromkeys(sockets)}  # type: ignore[arg-type]
    fanout = Fanout(members, None)
    for socket in sockets:
        fanout.joined(socket)  # type: ignore[arg-type]
    for offset in (1, 2):
        fanout.deliver(Publication("room", offset, channel_push("room", "say", "hi", offset)))
    fanout.send(sockets, b'{"event":"news","data":1}')  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert _CountingCodec.encoded == 3
    native = {id(s.outbound.wires[0]) for s in sockets if s.outbound.sender.codec is None}
    ss = {id(s.outbound.wires[0]) for s in sockets if s.outbound.sender.codec is not None}
    assert len(native) == len(ss) == 1  # the same bytes to every socket of a format
    assert ss_client.decode(sockets[1].outbound.wires[0][2:]).payload == {
        "channel": "room",
        "data": "hi",
        "offset": 1,
    }


def test_pending_requests_are_bounded_in_number_and_bytes():
    session = codecs.codec("serverless-sockets").session()
    assert isinstance(session, Session)
    for _ in range(MAX_PENDING + 10):
        session.decode(ss_client.encode("echo", 1), binary=True)
    assert session.pending == MAX_PENDING
    big = ss_client.encode("echo", "x" * 100_000)
    for _ in range(30):
        session.decode(big, binary=True)
    assert session.held <= MAX_HELD_BYTES
    assert session.pending == MAX_HELD_BYTES // len(big)
    # answering every remembered request leaves nothing held
    for request_id in range(1, MAX_PENDING + 41):
        session.encode(b'{"event":"echo","id":%d,"data":1}' % request_id)
    assert (session.pending, session.held) == (0, 0)


def test_the_endpoint_flag_repeats_and_an_unknown_format_is_a_usage_error():
    import click

    from monument_ws.cli.options import build_config
    from monument_ws.cli.run_command import run

    params = run.make_context(
        "run", ["--endpoint", "/ss=serverless-sockets", "--endpoint", "/ss2=serverless-sockets"]
    ).params
    flags = {"endpoints": params["endpoints"]}
    assert build_config(flags, None, {}).endpoints == (
        ("/ss", "serverless-sockets"),
        ("/ss2", "serverless-sockets"),
    )
    with pytest.raises(click.UsageError) as caught:
        build_config({"endpoints": ("/ss=nope",)}, None, {})
    assert str(caught.value).count("\n") == 0
    assert "unknown wire format 'nope'" in str(caught.value)


async def test_the_demo_app_serves_serverless_sockets_on_ss(aiohttp_client: Any, connect: Connect):
    """The demo (``monument-ws run``): plugs, handlers and the chat channel on ``/ss`` too."""
    from monument_ws.app_template.app.main import create_app

    client = await aiohttp_client(create_app())
    peer = await ss_connect(client, "/ss")
    await peer.send("hello", "ss")  # a plug
    assert (await peer.recv()).payload == "Hello, ss!"
    await peer.send("echo", {"x": 1})  # a handler
    assert (await peer.recv()).payload == {"x": 1}
    await peer.send("ws:subscribe", {"channel": "chat"})
    assert (await peer.recv()).event == "ws:subscribe"
    native = await connect(client)
    await native.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "chat"}})
    await native.request(
        {"event": "ws:publish", "id": 2, "data": {"channel": "chat", "event": "say", "data": "hi"}}
    )
    while (got := await peer.recv()).event != "say":  # the native socket's ws:join comes first
        assert (got.type, got.event) == (ss_client.BROADCAST, "ws:join")
    assert (got.type, got.payload["data"]) == (ss_client.BROADCAST, "hi")


async def test_a_subscribe_with_since_replays_in_the_format(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    peer = await ss_connect(client)
    await peer.send("ws:subscribe", {"channel": "news"})
    first = (await peer.recv()).payload
    await peer.send("ws:unsubscribe", {"channel": "news"})
    await peer.recv()
    for n in range(2):
        await ws.publish("news", "item", n)
    since = {"offset": first["offset"], "epoch": first["epoch"]}
    await peer.send("ws:subscribe", {"channel": "news", "since": since})
    replayed = [await peer.recv() for _ in range(3)]
    assert [(m.type, m.event, m.payload) for m in replayed[:2]] == [
        (ss_client.BROADCAST, "item", {"channel": "news", "data": n, "offset": n + 1})
        for n in range(2)
    ]
    assert (replayed[2].event, replayed[2].payload["recovered"]) == ("ws:subscribe", True)


def test_what_is_not_a_native_frame_is_dropped_not_raised():
    codec = ServerlessSockets()
    session = codec.session()
    for odd in (b"not json", b"[1]", b'{"data": 1}'):
        assert session.encode(odd) == b""
        assert codec.encode_shared(odd) == b""


async def test_a_data_provider_answers_under_its_set_event(make_server, bus: Any):
    """Data events are the bus's, as for native sockets: the reply's event is ``x:set:y``."""
    client, _ws = await make_server(endpoints=ENDPOINTS)
    bus.on("data:get:greeting", lambda event, **_: {"text": "hi"})
    peer = await ss_connect(client)
    await peer.send("data:get:greeting")
    got = await peer.recv()
    assert (got.type, got.event, got.payload) == (
        ss_client.MESSAGE,
        "data:set:greeting",
        {"text": "hi"},
    )
