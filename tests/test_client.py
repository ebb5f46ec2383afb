"""The Python client against real servers: reconnects, the outbox, close codes, timeouts.

Related tests elsewhere: no reconnect after 4401 (tests/test_security.py),
1,000 concurrent calls and server → client calls through the client
(tests/test_rpc.py), the README's ten-line client (tests/test_readme.py).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

import monument_ws
from monument_ws import ConnectionLost, Timeout
from monument_ws.client import Client
from monument_ws.protocol.errors import QueueFull, TooLarge
from tests.conftest import DEADLINE, Ticker, eventually


class Restartable:
    """A real server that stops and starts again on the same port, keeping its resume key."""

    def __init__(self, register: Callable[[monument_ws.MonumentWS], None]) -> None:
        self.register = register
        self.port = 0
        self.sockets: list[monument_ws.Socket] = []
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        ws = monument_ws.setup(
            app, bus=monument_ws.EventBus(), websocket=True, secret="restart", upgrade_rate=0
        )
        ws.bus.on(
            monument_ws.signals.SOCKET_CONNECTED,
            lambda event, *, socket, **_: self.sockets.append(socket),
        )
        self.register(ws)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
        self.runner = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"


class Gate:
    """An injectable sleep: records each delay; waits for ``open`` once ``hold_after`` were asked."""

    def __init__(self, hold_after: int = 0) -> None:
        self.delays: list[float] = []
        self.hold_after = hold_after
        self.open = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if len(self.delays) > self.hold_after:
            await self.open.wait()
        await asyncio.sleep(0)


def recorder(client: Client, *events: str) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def listen(event: str) -> None:
        client.on(event, lambda data: seen.append((event, data)))

    for event in events:
        listen(event)
    return seen


@pytest.fixture
async def notes_server():
    """A restartable server whose ``note`` handler records tells and ``echo`` answers."""
    notes: list[Any] = []

    def register(ws: monument_ws.MonumentWS) -> None:
        ws.handler("note")(lambda message, socket: notes.append(message.data))
        ws.handler("echo")(lambda message, socket: message.data)

    server = Restartable(register)
    server.notes = notes  # type: ignore[attr-defined]
    await server.start()
    yield server
    if server.runner is not None:
        await server.stop()


async def test_reconnects_after_a_restart_keeps_its_id_and_flushes_in_order(notes_server):
    """After a server restart on the same port: same client_id, tells sent offline in order, lifecycle events."""
    gate = Gate()
    c = Client(notes_server.url, sleep=gate)
    seen = recorder(c, "ws:connect", "ws:offline", "ws:reconnect", "ws:close")
    await c.connect()
    first_id = c.client_id
    await notes_server.stop()
    await eventually(lambda: gate.delays != [], "the client waiting to reconnect")
    assert not c.connected
    for i in range(5):
        c.tell("note", i)
    answer = asyncio.create_task(c.call("echo", "queued call"))
    await eventually(lambda: c.outbox_length == 6, "the call in the outbox after the tells")
    await notes_server.start()
    gate.open.set()
    assert await asyncio.wait_for(answer, DEADLINE) == "queued call"
    await eventually(lambda: len(notes_server.notes) == 5, "the tells made offline")
    assert notes_server.notes == [0, 1, 2, 3, 4]
    assert c.client_id == first_id
    await c.close()
    assert [event for event, _ in seen] == ["ws:connect", "ws:offline", "ws:reconnect", "ws:close"]
    assert seen[1][1]["code"] == 1001  # the server went away
    assert seen[-1][1] == {"code": 1000, "reason": "closed by the client"}


async def test_outbox_overflow_refuses_new_frames_and_keeps_old_ones(notes_server):
    """A full outbox raises QueueFull for tell and call at once; what it held still goes, in order."""
    gate = Gate()
    c = Client(notes_server.url, sleep=gate, outbox_limit=3)
    await c.connect()
    await notes_server.stop()
    await eventually(lambda: gate.delays != [], "the client waiting to reconnect")
    for i in range(3):
        c.tell("note", i)
    with pytest.raises(QueueFull):
        c.tell("note", "one too many")
    with pytest.raises(QueueFull):
        await c.call("echo", "one too many")
    assert c.outbox_length == 3
    await notes_server.start()
    gate.open.set()
    await eventually(lambda: c.connected and c.outbox_length == 0, "the outbox flushed")
    assert await c.call("echo", "after") == "after"
    assert notes_server.notes == [0, 1, 2]
    await c.close()


async def test_offline_call_times_out_and_leaves_the_outbox(notes_server):
    """A call waiting offline fails with Timeout after its own timeout and is removed from the outbox."""
    gate = Gate()
    c = Client(notes_server.url, sleep=gate)
    await c.connect()
    await notes_server.stop()
    await eventually(lambda: gate.delays != [], "the client waiting to reconnect")
    with pytest.raises(Timeout) as raised:
        await c.call("echo", 1, timeout=0.01)
    assert (raised.value.code.value, raised.value.remote) == ("timeout", False)
    assert c.outbox_length == 0
    await c.close()


async def test_calls_in_flight_fail_on_a_drop_unless_retried(make_server):
    """A drop fails sent calls with ConnectionLost; a retry=True call is sent again and answered."""
    client, ws = await make_server()
    runs: list[str] = []
    sockets: list[monument_ws.Socket] = []

    @ws.handler("hold")
    async def hold(message, socket):
        sockets.append(socket)
        runs.append(message.data)
        if len(sockets) <= 2:  # the first connection's requests never finish
            await asyncio.Event().wait()
        return message.data

    gate = Gate(hold_after=100)
    async with Client(str(client.make_url("/ws")), sleep=gate) as c:
        lost = asyncio.create_task(c.call("hold", "plain"))
        retried = asyncio.create_task(c.call("hold", "retried", retry=True))
        await eventually(lambda: len(runs) == 2, "both calls running on the server")
        await sockets[0].close(1011, "internal error")
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(lost, DEADLINE)
        assert await asyncio.wait_for(retried, DEADLINE) == "retried"
        assert sorted(runs) == ["plain", "retried", "retried"]
        assert sockets[2] is not sockets[0]


@pytest.mark.parametrize("code", [1000, 1008, 4403, 4409])
async def test_no_reconnect_after_a_final_close_code(make_server, code):
    """After 1000, 1008, 4403 or 4409 the client stops: no sleep, calls fail, ws:close has the code."""
    client, ws = await make_server()
    ws.handler("bye")(lambda message, socket: asyncio.ensure_future(socket.close(code, "bye")))
    gate = Gate()
    c = Client(str(client.make_url("/ws")), sleep=gate)
    closed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    c.on("ws:close", closed.set_result)
    await c.connect()
    c.tell("bye")
    assert await asyncio.wait_for(closed, DEADLINE) == {"code": code, "reason": "bye"}
    assert (c.state, c.close_code, gate.delays) == ("closed", code, [])
    with pytest.raises(ConnectionLost):
        await c.call("anything")
    await c.close()


@pytest.mark.parametrize("code", [1001, 1011, 4008, 4029])
async def test_reconnect_after_a_retryable_close_code(make_server, code):
    """After 1001, 1011, 4008 or 4029 the client reconnects with its client_id; 4029 waits longer."""
    client, ws = await make_server()
    ws.handler("bye")(lambda message, socket: asyncio.ensure_future(socket.close(code, "bye")))
    ws.handler("echo")(lambda message, socket: message.data)
    gate = Gate(hold_after=100)
    async with Client(str(client.make_url("/ws")), sleep=gate, long_delay=3.0) as c:
        seen = recorder(c, "ws:offline", "ws:reconnect")
        first_id = c.client_id
        c.tell("bye")
        await eventually(lambda: len(seen) == 2, "offline then reconnect")
        assert [event for event, _ in seen] == ["ws:offline", "ws:reconnect"]
        assert seen[0][1]["code"] == code
        assert c.client_id == first_id
        assert await c.call("echo", "back") == "back"
        assert len(gate.delays) == 1
        assert (gate.delays[0] >= 3.0) is (code == 4029)


async def test_reconnect_delays_are_jittered_and_bounded(notes_server):
    """The delays the reconnect loop waited are random * min(max, initial * 2**attempt), reset after success."""
    draws: list[float] = []
    rng = random.Random(4)

    def jitter() -> float:
        draws.append(rng.random())
        return draws[-1]

    gate = Gate(hold_after=8)
    c = Client(notes_server.url, sleep=gate, random=jitter, backoff_initial=0.1, backoff_max=0.8)
    await c.connect()
    await notes_server.stop()
    await eventually(lambda: len(gate.delays) == 9, "nine failed attempts")
    caps = [min(0.8, 0.1 * 2**attempt) for attempt in range(9)]
    assert gate.delays == [d * cap for d, cap in zip(draws, caps, strict=True)]
    assert all(0 <= d <= 0.8 for d in gate.delays)
    assert len(set(gate.delays)) == len(gate.delays)  # jittered, not a fixed schedule
    await notes_server.start()
    gate.open.set()
    await eventually(lambda: c.connected, "reconnected")
    gate.open.clear()
    gate.hold_after = 0
    gate.delays.clear()
    draws.clear()
    await notes_server.stop()
    await eventually(lambda: len(gate.delays) == 1, "the next drop")
    assert gate.delays == [draws[0] * 0.1]  # the backoff starts again from the initial delay
    gate.open.set()
    await c.close()


async def test_timeout_and_early_exit_cancel_on_the_server(make_server):
    """A call that times out and a stream left early are cancelled on the server; late answers are dropped."""
    client, ws = await make_server()
    ended: list[str] = []

    @ws.handler("slow")
    async def slow(message, socket):
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("slow")

    ticker = Ticker(ws)

    async with Client(str(client.make_url("/ws"))) as c:
        errors = recorder(c, "ws:error", "slow", "ticks")
        with pytest.raises(Timeout):
            await c.call("slow", timeout=0.05)
        async for n in c.stream("ticks"):
            if n == 3:
                break
        await eventually(lambda: ended == ["slow"] and ticker.closed.is_set(), "both cancelled")
        assert await c.call("ws:ping") == {}  # everything the server sent before is read
        assert errors == []  # the cancelled errors and late chunks reached no listener
        c.tell("ws:nope")  # an error without id does reach ws:error
        await eventually(lambda: errors != [], "the error event")
        assert errors[0][0] == "ws:error"
        assert errors[0][1]["code"] == "not_found"


async def test_every_repeats_and_stops_on_close(make_server):
    """every() tells (or calls) on an interval; cancel() stops one, closing the client stops all."""
    client, ws = await make_server()
    ticks: list[Any] = []
    ws.handler("tick")(lambda message, socket: ticks.append(message.data))
    ws.handler("echo")(lambda message, socket: message.data)
    counter = iter(range(1_000_000))
    results: list[Any] = []
    c = Client(str(client.make_url("/ws")))
    await c.connect()
    told = c.every(0.01, "tick", lambda: next(counter))
    called = c.every(0.01, "echo", "ping", on_result=results.append)
    await eventually(lambda: len(ticks) >= 3 and len(results) >= 3, "a few rounds")
    assert ticks[:3] == [0, 1, 2]
    assert results[:3] == ["ping"] * 3
    told.cancel()
    await eventually(lambda: told.cancelled, "the cancelled one stopped")
    assert not called.cancelled
    await c.close()
    await eventually(lambda: called.cancelled, "closing stopped the other")


async def test_the_template_demonstrates_a_stream_and_a_server_call():
    """The app template streams countdown and calls the client back in greet-me (NotFound if unperformed)."""
    from monument_ws.app_template.app import create_app
    from monument_ws.testing import Communicator

    async with Communicator(create_app()) as comm:
        assert [n async for n in comm.stream("countdown", 3)] == [3, 2, 1]
        with pytest.raises(monument_ws.NotFound, match="ask-name"):
            await comm.call("greet-me")
        comm.client.perform("ask-name", lambda data: "Ada")
        assert await comm.call("greet-me") == "Hello, Ada!"


async def test_a_call_the_server_closed_with_1009_fails_with_too_large_and_is_not_sent_again():
    """1009 blames the frame written last: that call fails with TooLarge even with
    ``retry=True`` (sending it again would close the next socket too), the client reconnects,
    and other calls go on; as in monument.js."""
    runs: list[str] = []

    def register(ws: monument_ws.MonumentWS) -> None:
        @ws.handler("huge")
        async def huge(message: monument_ws.Frame, socket: monument_ws.Socket) -> None:
            runs.append("huge")
            await socket.close(1009, "the message was too big")  # as the reader does for one

        @ws.handler("small")
        async def small(message: monument_ws.Frame, socket: monument_ws.Socket) -> str:
            return "fine"

    server = Restartable(register)
    await server.start()
    async with Client(server.url, sleep=Gate(hold_after=1_000)) as client:
        with pytest.raises(TooLarge):
            await asyncio.wait_for(client.call("huge", retry=True), DEADLINE)
        assert await asyncio.wait_for(client.call("small"), DEADLINE) == "fine"
        assert runs == ["huge"]
    await server.stop()
