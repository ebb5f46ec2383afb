"""The @owlmeans/socket endpoint over real sockets: its client (tests/owl_client.py, written from
the documented format) against a server serving ``endpoints={"/owl": "owlmeans"}`` beside the
native route: calls and typed errors, server calls, streams, events, peer queues, auth stages,
deadlines, and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monument_ws import MonumentWS
from monument_ws.auth import AuthStep, Session
from monument_ws.protocol import codecs
from monument_ws.protocol.codecs.owlmeans import (
    MAX_PENDING,
    Owlmeans,
    call_id,
    call_number,
    marshal,
    unmarshal,
)
from monument_ws.protocol.errors import NotFound, Unauthorized
from monument_ws.protocol.frames import Invalid
from monument_ws.protocol.yields import error
from tests.conftest import Connect, FakeClock
from tests.owl_client import OwlError, OwlPeer
from tests.ss_client import SSPeer
from tests.sss_client import SSSPeer

ENDPOINTS = {"/owl": "owlmeans"}


async def owl_connect(client: Any, path: str = "/owl") -> OwlPeer:
    """Open a socket and read the welcome (a ``system`` frame its listeners get)."""
    peer = OwlPeer(await client.ws_connect(path))
    welcome = await peer.next_heard()
    assert (welcome["type"], welcome["event"]) == ("system", "welcome")
    return peer


def handlers(ws: MonumentWS) -> None:
    @ws.handler("echo")
    async def echo(message: Any, socket: Any) -> Any:
        return message.data

    @ws.handler("locked")
    async def locked(message: Any, socket: Any) -> Any:
        raise Unauthorized("not yours")

    @ws.handler("fail")
    async def fail(message: Any, socket: Any) -> AsyncIterator[Any]:
        yield error("bad_frame", "send a move")

    @ws.handler("count")
    async def count(message: Any, socket: Any) -> AsyncIterator[Any]:
        for i in range(message.data["to"]):
            yield i

    @ws.handler("ask")
    async def ask(message: Any, socket: Any) -> Any:
        try:
            return {"answer": await socket.call(message.data, {"q": 1}, timeout=30)}
        except NotFound as exc:
            return {"refused": exc.message}


async def test_a_call_and_its_result(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await owl_connect(client)
    assert await peer.call("echo", {"x": [1, "é"]}) == {"x": [1, "é"]}
    assert await peer.call("echo") is None  # no argument: null
    assert await peer.call("echo", 1, 2) == [1, 2]  # several: the list
    await peer.close()


async def test_errors_come_back_typed(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await owl_connect(client)
    with pytest.raises(OwlError) as caught:
        await peer.call("locked")
    assert caught.value.type == "SocketErrorConnectionUnauthorized"
    assert caught.value.message == "socket:connection:unauthorized:not yours"
    with pytest.raises(OwlError) as caught:
        await peer.call("fail")
    assert (caught.value.type, caught.value.message) == (
        "SocketErrorMessageMalformed",
        "socket:message:malformed:send a move",
    )
    await peer.close()


async def test_an_unknown_method_is_answered_with_an_error_not_silence(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS)
    peer = await owl_connect(client)
    with pytest.raises(OwlError) as caught:
        await peer.call("no/such/method", 1)
    assert caught.value.type == "SocketErrorConnectionUnsupported"
    await peer.close()


async def test_a_server_call_is_performed_by_the_client(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await owl_connect(client)

    async def name(question: Any) -> Any:
        return {"name": "ada", "asked": question}

    peer.performers["name"] = name
    assert await peer.call("ask", "name") == {"answer": {"name": "ada", "asked": {"q": 1}}}
    # a method the client does not perform: its typed error is the server's NotFound
    got = await peer.call("ask", "nothing")
    assert got == {"refused": "nothing"}
    await peer.close()


async def test_a_server_call_to_serverless_sockets_fails_at_once(make_server):
    client, ws = await make_server(endpoints={"/ss": "serverless-sockets"})
    handlers(ws)
    peer = SSPeer(await client.ws_connect("/ss"))
    await peer.send("ask", "name")  # timeout=30 in the handler: an answer now means no wait
    got = await peer.recv()
    assert got.payload == {
        "refused": "the serverless-sockets wire format cannot carry server calls"
    }


async def test_a_server_call_to_super_scaled_sockets_fails_at_once(make_server):
    """super-scaled-sockets has no server calls either: its ask gets the refusal at once."""
    client, ws = await make_server(endpoints={"/sss": "super-scaled-sockets"})
    handlers(ws)
    peer = SSSPeer(await client.ws_connect("/sss"))
    await peer.begin()
    got = await peer.ask("ask", "name")  # timeout=30 in the handler: an answer now means no wait
    assert got["msg"] == {
        "refused": "the super-scaled-sockets wire format cannot carry server calls"
    }


async def test_a_request_streams_responses_and_ends(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await owl_connect(client)
    responses = await peer.request("count", {"to": 3})
    got = [await asyncio.wait_for(responses.get(), 10) for _ in range(4)]
    assert [(r["payload"], r.get("end")) for r in got] == [
        (0, None),
        (1, None),
        (2, None),
        (None, True),
    ]
    single = await peer.request("echo", "once")
    assert (await single.get()) | {"id": None} == {
        "type": "response",
        "id": None,
        "payload": "once",
        "end": True,
    }
    failed = await peer.request("fail")
    answer = await failed.get()
    assert (answer["error"], answer["end"]) == (True, True)
    assert answer["payload"].startswith("SocketErrorMessageMalformed|||")
    unknown = await peer.request("no/such/event")
    answer = await unknown.get()
    assert answer["payload"].startswith("SocketErrorConnectionUnsupported|||")
    malformed = await peer.request("")  # a request's payload needs an event
    answer = await malformed.get()
    assert answer["payload"].startswith("SocketErrorMessageMalformed|||")
    await peer.close()


async def test_events_both_ways_and_channel_publications(make_server, connect: Connect):
    ws: MonumentWS
    client, ws = await make_server(endpoints=ENDPOINTS)
    heard: asyncio.Queue[Any] = asyncio.Queue()

    @ws.handler("note")
    async def note(message: Any, socket: Any) -> None:
        await heard.put(message.data)
        await socket.send("noted", message.data)

    peer = await owl_connect(client)
    await peer.notify("note", {"n": 1})
    assert await asyncio.wait_for(heard.get(), 10) == {"n": 1}
    assert await peer.next_event() == {"type": "event", "event": "noted", "payload": {"n": 1}}
    assert (await peer.call("ws:subscribe", {"channel": "news"}))["channel"] == "news"
    await ws.publish("news", "item", "hot")
    assert await peer.next_event() == {
        "type": "event",
        "event": "item",
        "payload": "hot",
        "channel": "news",
        "offset": 1,
    }
    await ws.broadcast("all", 2)
    assert await peer.next_event() == {"type": "event", "event": "all", "payload": 2}
    await peer.notify("", 1)  # an event without a name
    refused = await peer.next_heard()
    while refused.get("type") != "system":
        refused = await peer.next_heard()
    assert refused["event"] == "error"
    assert refused["payload"].startswith("SocketErrorMessageMalformed|||")
    await peer.close()


async def test_messages_go_to_the_peer_queue_both_ways(make_server):
    ws: MonumentWS
    client, ws = await make_server(endpoints=ENDPOINTS)
    sockets: list[Any] = []

    @ws.handler("hello")
    async def hello(message: Any, socket: Any) -> Any:
        sockets.append(socket)
        return await socket.enqueued()

    peer = await owl_connect(client)
    await peer.enqueue({"job": 1}, "j-1")
    await peer.enqueue({"job": 2})
    assert await peer.call("hello") == 2  # messages are taken in order: both are stored
    (socket,) = sockets
    first = await socket.consume()
    assert first is not None
    assert first.data == {"job": 1}
    await peer.send({"job": 3})  # a bare object is a message carrying itself
    await peer.enqueue(None)  # null stays null
    assert await peer.call("hello") == 3  # (two more stored, one consumed)
    second, third, fourth = [await socket.consume() for _ in range(3)]
    assert [q.data if q else "none" for q in (second, third, fourth)] == [
        {"job": 2},
        {"job": 3},
        None,
    ]
    seq = await socket.enqueue({"reply": "done"})
    await asyncio.wait_for(peer.queued.wait(), 10)
    assert peer.consume() == ({"reply": "done"}, str(seq), 0)
    assert peer.consume() is None
    await peer.close()


async def test_auth_stages_on_staged_auth(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS, require_auth=True)
    handlers(ws)

    async def authenticate(socket: Any, stage: str, data: Any) -> AuthStep:
        if stage == "init":
            return AuthStep("authenticate", {"nonce": "n-1"})
        if stage == "authenticate" and data.get("token") == "good":
            return AuthStep("authenticated", {"hello": "ada"}, Session(user="ada"))
        raise Unauthorized(f"stage {stage} refused")

    ws.authenticator = authenticate
    peer = await owl_connect(client)
    with pytest.raises(OwlError) as caught:  # nothing but auth before authentication
        await peer.call("echo", 1)
    assert caught.value.type == "SocketErrorConnectionUnauthorized"
    assert await peer.auth("init", None) == {"nonce": "n-1"}
    assert peer.stage == "authenticate"
    with pytest.raises(OwlError) as refused:
        await peer.auth("authenticate", {"token": "bad"})
    assert refused.value.type == "SocketErrorConnectionUnauthorized"
    assert "stage authenticate refused" in refused.value.message
    assert await peer.auth("authenticate", {"token": "good"}) == {"hello": "ada"}
    assert peer.stage == "authenticated"
    assert await peer.call("echo", "in") == "in"
    with pytest.raises(OwlError):
        await peer.auth("", None)  # a stage must be named: refused in an auth frame too
    await peer.close()


async def test_a_late_result_is_dropped_after_the_calls_timeout(make_server, monkeypatch: Any):
    clock = FakeClock()
    monkeypatch.setitem(codecs.CODECS, "owlmeans", lambda: Owlmeans(clock=clock))
    ws: MonumentWS
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    started, release = asyncio.Event(), asyncio.Event()

    @ws.handler("slow")
    async def slow(message: Any, socket: Any) -> str:
        started.set()
        await release.wait()
        return "late"

    peer = await owl_connect(client)
    call = asyncio.ensure_future(peer.call("slow", timeout=50))
    await asyncio.wait_for(started.wait(), 10)
    clock.advance(0.051)  # the call's 50 ms have passed: its caller gave up
    release.set()
    assert await peer.call("echo", "next", timeout=50) == "next"
    assert not call.done()  # the late result never came
    call.cancel()
    # without a timeout (0), an answer is never too late
    started.clear()
    release.clear()
    call = asyncio.ensure_future(peer.call("slow", timeout=0))
    await asyncio.wait_for(started.wait(), 10)
    clock.advance(3600)
    release.set()
    assert await call == "late"
    await peer.close()


@pytest.mark.parametrize(
    ("raw", "code", "says"),
    [
        ("not json", "SocketErrorMessageMalformed", "not JSON"),
        ("[]", "SocketErrorMessageMalformed", "must be a JSON object"),
        ('{"type": "system", "event": "close"}', "SocketErrorMessageMalformed", "'system'"),
        ('{"type": "shout"}', "SocketErrorMessageMalformed", "unknown envelope type 'shout'"),
        ('{"type": 7}', "SocketErrorMessageMalformed", "unknown envelope type 7"),
        ('{"type": "call", "id": 7, "method": "echo"}', "SocketErrorMessageMalformed", "'id'"),
        ('{"type": "call", "id": "' + "x" * 63 + '"}', "SocketErrorMessageMalformed", "'id'"),
        ('{"type": "request", "id": null}', "SocketErrorMessageMalformed", "'id'"),
        ('{"type": "result", "id": 3}', "SocketErrorMessageMalformed", "the 'id' of the call"),
        ('{"type": "message", "id": 3}', "SocketErrorMessageMalformed", "'id' must be a string"),
        ('{"type": "response", "id": "a"}', "SocketErrorConnectionUnsupported", "no requests"),
    ],
)
async def test_bad_input_gets_a_system_error_and_the_socket_goes_on(
    make_server, raw: str, code: str, says: str
):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await owl_connect(client)
    await peer.send(raw)
    got = await peer.next_heard()
    assert (got["type"], got["event"]) == ("system", "error")
    assert got["payload"].startswith(code + "|||")
    assert says in got["payload"]
    assert await peer.call("echo", "still here") == "still here"
    await peer.close()


async def test_a_malformed_call_is_answered_as_that_call(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS)
    peer = await owl_connect(client)
    for bad in ({"method": 5}, {"method": "echo", "timeout": "soon"}):
        await peer.send({"type": "call", "id": "c-1", **bad})
        got = await peer.next_heard()
        assert (got["type"], got["id"]) == ("error", "c-1")
        assert got["payload"].startswith("SocketErrorMessageMalformed|||")


async def test_an_answer_for_a_call_never_made_is_dropped(make_server):
    client, ws = await make_server(endpoints=ENDPOINTS)
    handlers(ws)
    peer = await owl_connect(client)
    for answer in ({"type": "result", "id": "nope"}, {"type": "error", "id": call_id(99)}):
        await peer.send(answer)
    assert await peer.call("echo", 1) == 1  # nothing came back for them, and nothing broke


async def test_a_ping_is_answered_with_a_pong_even_before_authentication(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS, require_auth=True)
    peer = await owl_connect(client)
    await peer.send({"type": "ping"})
    assert await peer.next_heard() == {"type": "pong"}


async def test_a_binary_frame_closes_with_1003(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS)
    peer = await owl_connect(client)
    await peer.send(b"{}")
    code, reason = await peer.closed()
    assert code == 1003
    assert "binary frames are not supported" in reason


async def test_bad_frames_in_a_row_close_with_1008(make_server):
    client, _ws = await make_server(endpoints=ENDPOINTS, max_bad_frames=3)
    peer = await owl_connect(client)
    for _ in range(3):
        await peer.send("{")
    code, _ = await peer.closed()
    assert code == 1008


async def test_a_channel_shared_with_a_native_socket(make_server, connect: Connect):
    client, _ws = await make_server(
        endpoints=ENDPOINTS, channels={"chat:*": {"publish": "subscribers"}}
    )
    peer = await owl_connect(client)
    native = await connect(client)
    await peer.call("ws:subscribe", {"channel": "chat:1"})
    await native.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "chat:1"}})
    data = {"channel": "chat:1", "event": "say", "data": "from owl"}
    assert (await peer.call("ws:publish", data))["offset"] == 1
    assert (await native.recv())["data"] == "from owl"
    assert (await peer.next_event())["payload"] == "from owl"


def test_pending_calls_are_bounded():
    session = Owlmeans().session()
    for n in range(MAX_PENDING + 10):
        session.decode(b'{"type":"call","id":"c%d","method":"echo"}' % n, False)
    assert session.pending == MAX_PENDING
    # the oldest were forgotten: their answers are dropped, a remembered one goes out once
    assert session.encode(b'{"event":"echo","id":"c:c0","data":1}') == b""
    assert session.encode(b'{"event":"echo","id":"c:c20","data":1}') != b""
    assert session.encode(b'{"event":"echo","id":"c:c20","data":1}') == b""
    assert session.pending == MAX_PENDING - 1


def test_a_call_id_in_flight_is_refused_without_touching_the_first():
    session = Owlmeans().session()
    assert len(session.decode(b'{"type":"call","id":"x","method":"echo"}', False)) == 1
    (again,) = session.decode(b'{"type":"call","id":"x","method":"echo"}', False)
    assert isinstance(again, Invalid)
    assert (again.code, again.id) == ("duplicate_id", None)
    assert session.encode(b'{"event":"echo","id":"c:x","data":1}') != b""


def test_errors_marshal_and_call_ids_round_trip():
    assert marshal("timeout", "slow") == "SocketErrorTimeout|||socket:timeout:slow|||"
    assert marshal("internal", "oops") == "SocketError|||socket:oops|||"
    assert unmarshal("SocketErrorTimeout|||socket:timeout:x|||stack") == {
        "code": "timeout",
        "message": "socket:timeout:x",
    }
    assert unmarshal("MyError|||mine|||")["code"] == "internal"
    assert unmarshal({"odd": 1})["code"] == "internal"
    assert call_number(call_id(7)) == 7
    assert call_number("not-a-uuid") == call_number(str(__import__("uuid").uuid4())) == 0


def test_what_is_not_a_native_frame_is_dropped_not_raised():
    codec = Owlmeans()
    session = codec.session()
    for odd in (b"not json", b"[1]", b'{"data": 1}'):
        assert session.encode(odd) == b""
        assert codec.encode_shared(odd) == b""


async def test_the_demo_app_serves_owlmeans_on_owl(aiohttp_client: Any):
    from monument_ws.app_template.app.main import create_app

    client = await aiohttp_client(create_app())
    peer = await owl_connect(client)
    assert await peer.call("hello", "owl") == "Hello, owl!"  # a plug
    assert await peer.call("echo", {"x": 1}) == {"x": 1}  # a handler
    await peer.close()
