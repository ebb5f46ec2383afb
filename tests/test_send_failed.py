"""SEND_FAILED (``error:ws``, monument's name): a send to a socket that failed is reported on
the bus -- a closed socket and a slow consumer once per socket, each unencodable send once --
and the code that sent never waits for the report nor gets an exception from it."""

import asyncio
from typing import Any

from monument_ws import EventBus, signals
from monument_ws.connection.socket import Socket
from monument_ws.protocol.errors import ConnectionLost
from tests.conftest import Connect, eventually


def failures(bus: EventBus) -> list[tuple[Socket, str, BaseException]]:
    got: list[tuple[Socket, str, BaseException]] = []
    bus.on(
        signals.SEND_FAILED,
        lambda event, *, socket, reason, error, **_: got.append((socket, reason, error)),
    )
    return got


def test_the_event_has_monuments_name_under_a_reserved_prefix():
    assert signals.SEND_FAILED == "error:ws"
    assert signals.SEND_FAILED.startswith(signals.RESERVED_PREFIXES)


async def test_sending_to_a_closed_socket_is_reported_once(
    make_server, connect: Connect, bus: EventBus
):
    """The client closes; the app's later sends return False and one report says "closed"."""
    client, _ws = await make_server()
    got = failures(bus)
    held: list[Socket] = []
    bus.on(signals.SOCKET_CONNECTED, lambda event, *, socket, **_: held.append(socket))
    closed: list[int | None] = []
    bus.on(signals.SOCKET_CLOSED, lambda event, *, code, **_: closed.append(code))
    peer = await connect(client)
    await peer.close()
    await eventually(lambda: bool(closed), "SOCKET_CLOSED")
    socket = held[0]
    assert await socket.send("late", 1) is False
    assert socket.send_nowait("later", 2) is False
    await eventually(lambda: bool(got), "the report")
    await asyncio.sleep(0)  # a second report, were there one, would be a task started by now
    assert [(s, reason) for s, reason, _ in got] == [(socket, "closed")]
    assert isinstance(got[0][2], ConnectionLost)


async def test_a_slow_consumer_is_reported_once_and_not_as_closed(
    make_server, connect: Connect, bus: EventBus
):
    """A client that does not read overflows its send buffer: one "slow_consumer" report,
    and the frames refused after it (the socket is being closed) are not reported again."""
    client, ws = await make_server(send_buffer_frames=10)
    got = failures(bus)
    refused: list[int] = []

    @ws.handler("flood")
    async def flood(message, socket):
        chunk = "x" * 50_000
        for i in range(400):
            if not socket.send_nowait("item", chunk):
                refused.append(i)
                if len(refused) == 3:
                    break

    peer = await connect(client)
    await peer.send({"event": "flood"})
    assert await peer.closed() == 4008
    await eventually(lambda: len(refused) == 3, "three refused frames")
    await eventually(lambda: bool(got), "the report")
    await eventually(lambda: len(ws.hub) == 0, "the socket to be gone")
    assert [reason for _, reason, _ in got] == ["slow_consumer"]
    assert "slow consumer" in str(got[0][2])


async def test_data_json_cannot_hold_is_reported_and_the_socket_stays(
    make_server, connect: Connect, bus: EventBus
):
    """socket.send with unencodable data returns False (no traceback to the handler), reports
    "encoding" with the TypeError each time, and the socket keeps working."""
    client, ws = await make_server()
    got = failures(bus)

    @ws.handler("bad")
    async def bad(message, socket):
        return [await socket.send("x", object()), socket.send_nowait("y", {1j})]

    peer = await connect(client)
    assert (await peer.request({"event": "bad", "id": 1}))["data"] == [False, False]
    await eventually(lambda: len(got) == 2, "two reports")
    assert [reason for _, reason, _ in got] == ["encoding", "encoding"]
    assert all(isinstance(error, TypeError) for _, _, error in got)
    assert (await peer.request({"event": "ws:ping", "id": 2}))["data"] == {}


async def test_a_receiver_that_raises_does_not_reach_the_sender(
    make_server, connect: Connect, bus: EventBus
):
    """The report runs apart from the send: a failing receiver is logged, the send returns."""
    client, ws = await make_server()
    calls: list[Any] = []

    def broken(event: str, **_: Any) -> None:
        calls.append(event)
        raise RuntimeError("receiver bug")

    bus.on(signals.SEND_FAILED, broken)

    @ws.handler("bad")
    async def bad(message, socket):
        return await socket.send("x", object())

    peer = await connect(client)
    assert (await peer.request({"event": "bad", "id": 1}))["data"] is False
    await eventually(lambda: calls == ["error:ws"], "the receiver to run")
    assert (await peer.request({"event": "ws:ping", "id": 2}))["data"] == {}


async def test_an_answer_json_cannot_hold_is_reported(make_server, connect: Connect, bus: EventBus):
    """A handler (plain or async) answering with data JSON cannot hold: the client gets
    ``internal`` as before, and the bus gets an "encoding" report for each."""
    client, ws = await make_server()
    got = failures(bus)
    ws.handler("plain")(lambda message, socket: object())

    @ws.handler("async")
    async def a_set(message, socket):
        return {1j}

    peer = await connect(client)
    for request_id, event in enumerate(("plain", "async")):
        answer = await peer.request({"event": event, "id": request_id})
        assert answer["error"]["code"] == "internal"
    await eventually(lambda: len(got) == 2, "two reports")
    assert [reason for _, reason, _ in got] == ["encoding", "encoding"]
