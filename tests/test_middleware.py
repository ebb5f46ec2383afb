"""Frame middleware and raw listeners, on the server and in the Python client, over real sockets."""

import asyncio
import json
from typing import Any

import pytest

from monument_ws import Forbidden, MonumentWSError
from monument_ws.client import Client
from monument_ws.protocol.errors import InternalError
from tests.conftest import DEADLINE, eventually


async def test_server_outgoing_hook_stamps_every_frame_and_fan_out_once(make_server, connect):
    """Replies, pushes and errors are stamped per socket; a publication is stamped once per
    process (socket None) and every subscriber gets the same stamped frame."""
    client, ws = await make_server()
    seen: list[Any] = []

    @ws.middleware.outgoing
    def stamp(frame, socket):
        seen.append((frame["event"], socket))
        frame["sender"] = "node-1"
        frame["dt"] = len(seen)  # an injectable stand-in for a clock

    @ws.handler("echo")
    async def echo(message, socket):
        return message.data

    peers = [await connect(client) for _ in range(3)]
    assert peers[0].welcome["sender"] == "node-1"
    reply = await peers[0].request({"event": "echo", "id": 1, "data": "hi"})
    assert (reply["data"], reply["sender"]) == ("hi", "node-1")
    error = await peers[0].request({"event": "nobody", "id": 2})
    assert (error["error"]["code"], error["sender"]) == ("not_found", "node-1")
    for i, peer in enumerate(peers):
        await peer.request({"event": "ws:subscribe", "id": 10 + i, "data": {"channel": "news"}})
    seen.clear()
    await ws.publish("news", "article", {"title": "t"})
    frames = [await peer.recv() for peer in peers]
    assert frames[0] == frames[1] == frames[2]
    assert frames[0] == {
        "event": "article",
        "channel": "news",
        "data": {"title": "t"},
        "offset": 1,
        "sender": "node-1",
        "dt": 1,
    }
    assert seen == [("article", None)], "one hook run for three subscribers"


async def test_server_incoming_hook_refuses_rewrites_and_survives_a_bug(make_server, connect):
    """A refusal answers ws:error with the hook's code (with or without id) and nothing is
    routed; a returned frame replaces the original; a failing hook is an internal error."""
    client, ws = await make_server()
    ran: list[Any] = []

    @ws.middleware.incoming
    def gate(frame, socket):
        if frame["event"].startswith("admin:"):
            raise Forbidden("admin events are not accepted on sockets")
        if frame["event"] == "hello":
            return {**frame, "event": "echo"}
        if frame["event"] == "buggy":
            raise ValueError("a bug in the hook")
        return None

    @ws.handler("echo")
    async def echo(message, socket):
        ran.append(message.event)
        return message.data

    @ws.handler("admin:drop")
    async def drop(message, socket):
        ran.append(message.event)

    peer = await connect(client)
    refused = await peer.request({"event": "admin:drop", "id": 1})
    assert refused["error"] == {
        "code": "forbidden",
        "message": "admin events are not accepted on sockets",
    }
    await peer.send({"event": "admin:drop"})
    assert (await peer.recv())["error"]["code"] == "forbidden"
    assert (await peer.request({"event": "hello", "id": 2, "data": 5}))["data"] == 5
    assert (await peer.request({"event": "buggy", "id": 3}))["error"] == {
        "code": "internal",
        "message": "internal error",
    }
    assert ran == ["echo"]
    assert ws.stats.refused["middleware"] == 3
    assert (ws.middleware.refused, ws.middleware.failed) == (2, 1)


async def test_server_outgoing_refusal_answers_requests_and_drops_pushes(make_server, connect):
    """A refused reply becomes an error with its id (one answer per request); a refused push
    is not sent at all."""
    client, ws = await make_server()

    @ws.middleware.outgoing
    def censor(frame, socket):
        if frame.get("data") == "secret":
            raise Forbidden("not for your eyes")

    @ws.handler("echo")
    async def echo(message, socket):
        return message.data

    peer = await connect(client)
    assert (await peer.request({"event": "echo", "id": 1, "data": "secret"}))["error"] == {
        "code": "forbidden",
        "message": "not for your eyes",
    }
    (socket,) = list(ws.hub)
    await socket.send("note", "secret")
    await socket.send("note", "public")
    assert await peer.recv() == {"event": "note", "data": "public"}


async def test_server_raw_listener_sees_every_incoming_frame(make_server, connect):
    """Listeners get every frame first: parsed JSON, or the raw text of one that is not JSON;
    a failing listener does not stop the others or the socket."""
    client, ws = await make_server()
    heard: list[Any] = []
    ws.middleware.listen(lambda socket, message: 1 / 0)
    ws.middleware.listen(lambda socket, message: heard.append(message))
    peer = await connect(client)
    await peer.request({"event": "ws:ping", "id": 1})
    await peer.send("{not json")
    assert (await peer.recv())["error"]["code"] == "bad_json"
    await peer.send("[1]")
    assert (await peer.recv())["error"]["code"] == "bad_frame"
    assert heard == [{"event": "ws:ping", "id": 1}, "{not json", [1]]


async def test_client_hooks_stamp_and_refuse_both_ways(make_server):
    """Client outgoing hooks stamp what the server sees and a refusal raises at the caller;
    incoming hooks rewrite pushes and refuse replies, pushes and server calls with their code."""
    client, ws = await make_server()
    got: dict[str, Any] = {}

    @ws.handler("whoami")
    async def whoami(message, socket):
        got["sender"] = message.raw.get("sender")
        return "secret" if message.data == "secret" else "ok"

    @ws.handler("ask")
    async def ask(message, socket):
        try:
            return await socket.call("confirm", message.data, timeout=10)
        except Forbidden as exc:
            return f"refused: {exc.message}"

    c = Client(str(client.make_url("/ws")))

    @c.outgoing
    def sign(frame):
        if frame.get("data") == "forbidden-word":
            raise Forbidden("the client refuses to send that")
        frame["sender"] = "py-client"

    @c.incoming
    def screen(frame):
        if frame.get("data") == "secret":
            raise Forbidden("screened")
        if frame.get("event") == "news":
            return {**frame, "data": {"wrapped": frame["data"]}}
        return None

    news: list[Any] = []
    c.on("news", news.append)
    c.perform("confirm", lambda data: "yes")
    async with c:
        assert await c.call("whoami") == "ok"
        assert got["sender"] == "py-client"
        with pytest.raises(Forbidden, match="the client refuses"):
            c.tell("whoami", "forbidden-word")
        with pytest.raises(Forbidden, match="screened"):
            await c.call("whoami", "secret")
        assert await c.call("ask", "x") == "yes"
        assert await c.call("ask", "secret") == "refused: screened"
        (socket,) = list(ws.hub)
        await socket.send("news", "secret")
        await socket.send("news", 1)
        await eventually(lambda: news == [{"wrapped": 1}], "the wrapped push")
        assert c.refused == 3


async def test_client_incoming_hook_bug_refuses_as_internal_and_the_connection_lives(
    make_server, caplog
):
    """A hook that raises something else than a MonumentWSError (or returns something else
    than a dict or None) refuses the frame as ``internal``, like monument.js: a server call
    gets a ws:error, a reply fails its call, a push is dropped; it is logged, and the same
    connection goes on serving."""
    client, ws = await make_server()

    @ws.handler("echo")
    async def echo(message, socket):
        return message.data

    @ws.handler("ask")
    async def ask(message, socket):
        try:
            return await socket.call("confirm", message.data, timeout=DEADLINE)
        except MonumentWSError as exc:
            return f"{exc.code.value}: {exc.message}"

    c = Client(str(client.make_url("/ws")))

    @c.incoming
    def buggy(frame):
        if frame.get("data") == "boom":
            raise RuntimeError("a bug in the hook")
        if frame.get("data") == "list":
            return [frame]
        return None

    news: list[Any] = []
    lifecycle: list[str] = []
    c.on("news", news.append)
    c.on("ws:offline", lambda data: lifecycle.append("offline"))
    c.on("ws:reconnect", lambda data: lifecycle.append("reconnect"))
    c.perform("confirm", lambda data: "yes")
    async with c:
        client_id = c.client_id
        (socket,) = list(ws.hub)
        with pytest.raises(InternalError, match="internal error") as refused:
            await c.call("echo", "boom", timeout=DEADLINE)
        assert refused.value.remote is False
        with pytest.raises(InternalError):
            await c.call("echo", "list", timeout=DEADLINE)
        assert await c.call("ask", "boom", timeout=DEADLINE) == "internal: internal error"
        await socket.send("news", "boom")
        await socket.send("news", 1)
        await eventually(lambda: news == [1], "the push after the refused one")
        assert c.refused == 4
        assert await c.call("echo", "still here", timeout=DEADLINE) == "still here"
        assert (c.state, c.client_id, lifecycle) == ("open", client_id, [])
        assert list(ws.hub) == [socket]
    failures = [r for r in caplog.records if r.name == "monument_ws.client" and r.exc_info]
    assert len(failures) == 4
    assert "an incoming frame hook failed" in failures[0].getMessage()


async def test_client_raw_listener_sees_every_frame(make_server):
    """The client's listen() gets the welcome, replies, pushes and non-JSON text, in order."""
    client, ws = await make_server()
    heard: list[Any] = []
    c = Client(str(client.make_url("/ws")))
    c.listen(heard.append)
    async with c:
        await c.call("ws:ping")
        (socket,) = list(ws.hub)
        await socket.send("news", 1)
        await socket.send_raw(b"not json")
        await eventually(lambda: len(heard) == 4, "four frames")
    assert heard[0]["event"] == "ws:welcome"
    assert heard[1:] == [
        {"event": "ws:ping", "id": 1, "data": {}},
        {"event": "news", "data": 1},
        "not json",
    ]
    assert json.loads(json.dumps(heard[0]))["data"]["client_id"] == c.client_id
    await asyncio.sleep(0)
