"""Graceful shutdown: upgrades refused, sockets drained with 1001 in batches, requests finish."""

import asyncio
import contextlib
import json
import statistics
from typing import Any

import aiohttp
import pytest

from monument_ws import MonumentWS, signals
from monument_ws.client import Client
from monument_ws.publisher import Publisher
from tests.conftest import (
    DEADLINE,
    REDIS_URL,
    Connect,
    eventually,
    masked_text,
    open_raw,
    read_frame,
)
from tests.test_cluster import Server


async def test_drain_refuses_upgrades_finishes_requests_then_closes_with_1001(
    make_server, connect: Connect
):
    """While draining, /ready is 503 and an upgrade gets HTTP 503; a running request still gets
    its answer before its socket closes with 1001; a new request meanwhile gets unavailable."""
    client, ws = await make_server(health=True, drain_period=0.2, drain_batch=2, drain_grace=5)
    release = asyncio.Event()

    @ws.handler("slow")
    async def slow(message, socket):
        await release.wait()
        return "finished"

    peers = [await connect(client) for _ in range(5)]
    busy = peers[0]
    await busy.send({"event": "slow", "id": 1})
    await eventually(lambda: any(s.running for s in ws.hub), "the slow request running")

    closing = asyncio.gather(*(peer.closed() for peer in peers[1:]))
    drain = asyncio.get_running_loop().create_task(ws.on_shutdown(client.app))
    await eventually(lambda: ws.draining, "draining")
    ready = await client.get("/health/ready")
    assert (ready.status, (await ready.json())["draining"]) == (503, True)
    refused = await client.get("/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"})
    assert refused.status == 503
    assert await closing == [1001] * 4
    await eventually(lambda: len(ws.hub) == 1, "every idle socket closed")
    await busy.send({"event": "slow", "id": 2})  # its socket is closing: no new work
    assert (await busy.recv())["error"]["code"] == "unavailable"
    release.set()
    assert await busy.recv() == {"event": "slow", "id": 1, "data": "finished"}
    assert await busy.closed() == 1001
    await asyncio.wait_for(drain, DEADLINE)
    assert ws.stats.drained == 5


async def test_a_python_client_busy_when_drained_reports_1001_and_reconnects(make_server):
    """The server closes its side right after its 1001 close frame. A Python client that is
    not reading just then (an async listener is running) finds its transport gone when it
    answers that close frame; it still reports the code the server sent — 1001, not 1006 —
    and reconnects after a jittered delay, keeping its client_id."""
    client, ws = await make_server()
    entered, release = asyncio.Event(), asyncio.Event()
    offline: list[int] = []
    delays: list[float] = []

    async def recorded_sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0)

    c = Client(
        str(client.make_url("/ws")), heartbeat=False, random=lambda: 0.5, sleep=recorded_sleep
    )

    async def busy(data: object) -> None:
        entered.set()
        await release.wait()

    c.on("work", busy)
    c.on("ws:offline", lambda data: offline.append(data["code"]))
    reconnected = asyncio.Event()
    c.on("ws:reconnect", lambda data: reconnected.set())
    async with c:
        client_id = c.client_id
        (socket,) = list(ws.hub)
        await socket.send("work")
        async with asyncio.timeout(DEADLINE):
            await entered.wait()
        assert await ws.hub.drain(0, 10, 1.0) == 1
        connection = c._ws
        assert connection is not None
        await eventually(
            lambda: connection.get_extra_info("peername") is None,
            "the client's transport lost the connection",
        )
        release.set()
        async with asyncio.timeout(DEADLINE):
            await reconnected.wait()
        assert offline == [1001]
        assert delays == [0.5 * c.backoff_initial]  # random() * the first backoff step
        assert (c.client_id, c.connected) == (client_id, True)


DRAIN_PERIOD = 5.0
CLIENTS = 500


@pytest.mark.timeout(120)
async def test_rolling_restart_moves_500_clients_without_losing_a_message(redis_prefix):
    """Stop one of two processes while 500 subscribed clients (given both URLs) hear a publisher
    that keeps publishing: all move to the other process, every client gets every message
    exactly once in order (history on Redis), and the reconnects spread over the drain period."""
    common = ("--broker", REDIS_URL, "--broker-prefix", redis_prefix, "--secret", "s",
              "--upgrade-rate", "0")  # fmt: skip
    a = await Server(*common, "--drain-period", str(DRAIN_PERIOD), "--drain-batch", "25").start()
    b = await Server(*common).start()
    loop = asyncio.get_running_loop()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    clients: list[Client] = []
    received: list[list[int]] = []
    reconnected_at: list[list[float]] = []
    offline_codes: list[list[int]] = []
    publishing = True
    published: list[int] = []
    try:

        async def join(i: int) -> None:
            client = Client([a.url, b.url], session=session, heartbeat=False)
            got: list[int] = []
            times: list[float] = []
            codes: list[int] = []
            client.on("ws:reconnect", lambda _: times.append(loop.time()))
            client.on("ws:offline", lambda data: codes.append(data["code"]))
            await client.connect()
            await client.subscribe("ticks", lambda m: got.append(m.offset))
            clients.append(client)
            received.append(got)
            reconnected_at.append(times)
            offline_codes.append(codes)

        for start in range(0, CLIENTS, 50):
            await asyncio.gather(*(join(i) for i in range(start, start + 50)))
        assert all(c.url == a.url for c in clients)

        async def publish() -> None:
            async with Publisher(
                REDIS_URL, broker_prefix=redis_prefix, channels={"ticks": {"history_size": 1000}}
            ) as publisher:
                n = 0
                while publishing:
                    n += 1
                    published.append(await publisher.publish("ticks", "tick", n))
                    await asyncio.sleep(0.05)

        publisher = loop.create_task(publish())
        await eventually(lambda: all(len(got) >= 3 for got in received), "the first ticks")
        assert await a.stop() == 0  # SIGTERM: drains, then exits
        await eventually(
            lambda: all(c.connected and c.url == b.url for c in clients), "all on the other"
        )
        await asyncio.sleep(0.3)  # a few more ticks, delivered live by the other process
        publishing = False
        await asyncio.wait_for(publisher, DEADLINE)
        expected = list(range(1, len(published) + 1))
        assert published == expected
        await eventually(lambda: all(got == expected for got in received), "every message")
    finally:
        for client in clients:
            await client.close()
        await session.close()
        await a.stop()
        await b.stop()

    assert all(codes[0] == 1001 for codes in offline_codes)  # then at most failed attempts
    assert all(len(times) == 1 for times in reconnected_at)
    spread(sorted(times[0] for times in reconnected_at))


def spread(times: list[float]) -> None:
    """The reconnects were spread over the drain period, judged by their distribution only.

    The server closes 20 batches of 25 sockets, one every 0.25 s. A busy server only stretches
    that; a busy test process can bunch a few batches, and handling 500 reconnects here costs
    time too, so the bounds are loose yet far from what closing all at once would give:
    the middle 80 % of the reconnects span at least 40 % of the period, and no tenth of the
    period holds more than half of them.
    """
    deciles = statistics.quantiles(times, n=10)
    assert deciles[-1] - deciles[0] >= 0.4 * DRAIN_PERIOD, deciles
    window = DRAIN_PERIOD / 10
    busiest = max(sum(1 for t in times if start <= t < start + window) for start in times)
    assert busiest <= len(times) // 2, busiest


class Worker:
    """One socket's traffic: lock-step loops of requests, each answer matched to its id."""

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.finished = False
        self.close_code: int | None = None
        self.sent = 0
        self.answered = 0
        self.unanswered: dict[str, int] = {}
        self.codes: dict[str, int] = {}
        self._ids = 0
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def read(self) -> None:
        """Resolve each request with its final answer (a reply, ``end`` or ws:error)."""
        ws = self.peer.ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frame = json.loads(msg.data)
                if frame.get("more"):
                    continue  # a stream's chunk
                waiter = self._waiting.pop(frame.get("id"), None)
                assert waiter is not None, f"an answer to no request: {frame}"
                waiter.set_result(frame)
        finally:
            self.finished = True
            self.close_code = ws.close_code
            for waiter in self._waiting.values():
                waiter.set_result(None)  # the close came first
            self._waiting.clear()

    async def loop(self, event: str) -> None:
        """Send a request, wait for its final answer, again, until the socket closes."""
        loop = asyncio.get_running_loop()
        while not self.finished:
            self._ids += 1
            request_id = self._ids
            waiter = self._waiting[request_id] = loop.create_future()
            try:
                await self.peer.ws.send_str(json.dumps({"event": event, "id": request_id}))
            except ConnectionError:
                self._waiting.pop(request_id, None)
                return
            self.sent += 1
            answer = await waiter
            if answer is None:
                self.unanswered[event] = self.unanswered.get(event, 0) + 1
                return
            self.answered += 1
            if answer["event"] == "ws:error":
                code = answer["error"]["code"]
                self.codes[code] = self.codes.get(code, 0) + 1


def watch_close_frames(ws: Any) -> dict[str, int]:
    """Count the frames each server socket reads after its close frame was written."""
    late = {"frames": 0}
    close_sent: set[Any] = set()

    def connected(event: str, *, socket: Any, **_: Any) -> None:
        transport = socket.request.transport
        write = transport.write

        def watched(data: Any) -> None:
            if bytes(data[:1]) == b"\x88" and len(data) < 128:  # FIN + close opcode
                close_sent.add(socket)
            write(data)

        transport.write = watched

    def listen(socket: Any, message: Any) -> None:
        if socket in close_sent:
            late["frames"] += 1

    ws.bus.on(signals.SOCKET_CONNECTED, connected)
    ws.middleware.listen(listen)
    return late


def serve_echo_and_countdown(ws: MonumentWS) -> None:
    async def countdown(message: Any, socket: Any) -> Any:
        for i in range(5, 0, -1):
            yield i
            await asyncio.sleep(0.02)

    ws.handler("echo")(lambda message, socket: message.data)
    ws.handler("countdown")(countdown)


async def test_a_drain_answers_every_request_it_read_before_closing_1001(
    make_server, connect: Connect
):
    """Draining 40 busy sockets in batches: each closes with 1001, and every request the server
    read got its one final answer (a reply, an end, or unavailable) before the close frame."""
    client, ws = await make_server(
        drain_period=1, drain_batch=10, drain_grace=5, rate_limit=0, heartbeat=0
    )
    serve_echo_and_countdown(ws)
    late = watch_close_frames(ws)
    workers = [Worker(await connect(client)) for _ in range(40)]
    traffic = [
        asyncio.create_task(job)
        for worker in workers
        for job in (worker.read(), worker.loop("echo"), worker.loop("countdown"))
    ]
    await eventually(lambda: all(w.answered >= 10 for w in workers), "traffic on every socket")
    drain = asyncio.get_running_loop().create_task(ws.on_shutdown(client.app))
    await asyncio.wait_for(asyncio.gather(*traffic), DEADLINE)
    await asyncio.wait_for(drain, DEADLINE)
    assert [w.close_code for w in workers] == [1001] * 40
    for worker in workers:
        assert all(n <= 1 for n in worker.unanswered.values()), worker.unanswered
    # Every frame sent was a request with an id; those read after the close frame went out
    # cannot be answered any more.
    read = sum(ws.stats.frames_in_by) - late["frames"]
    answered = sum(w.answered for w in workers)
    unavailable = sum(w.codes.get("unavailable", 0) for w in workers)
    assert answered == read, (
        f"the server read {read} requests before its close frames and answered {answered} "
        f"({unavailable} with unavailable); {read - answered} got no answer"
    )
    assert set().union(*(w.codes for w in workers)) <= {"unavailable"}
    assert ws.stats.drained == 40


async def test_a_drain_closes_a_socket_whose_work_ended_in_its_batch_not_after_the_grace(
    make_server, connect: Connect
):
    """With nothing left running (a request was cancelled at once and answered), every socket
    closes with 1001 in its batch: the drain ends long before a 30 s drain_grace."""
    client, ws = await make_server(
        drain_period=1, drain_batch=10, drain_grace=30, rate_limit=0, heartbeat=0
    )
    serve_echo_and_countdown(ws)
    workers = [Worker(await connect(client)) for _ in range(20)]
    traffic = [
        asyncio.create_task(job)
        for worker in workers
        for job in (worker.read(), worker.loop("echo"), worker.loop("countdown"))
    ]
    reader, writer = await open_raw(client)
    drain: asyncio.Task[None] | None = None
    try:
        assert json.loads((await read_frame(reader))[1])["event"] == "ws:welcome"
        # A stream and its cancel in one write: the stream's first step runs at once (it sends
        # its first chunk and waits), then the cancel ends it.
        writer.write(
            masked_text(b'{"event":"countdown","id":1}')
            + masked_text(b'{"event":"ws:cancel","id":2,"data":{"id":1}}')
        )
        answers = [json.loads((await read_frame(reader))[1]) for _ in range(3)]
        assert [a.get("more") for a in answers[:1]] == [True], answers
        assert [a.get("error", {}).get("code") for a in answers[1:]] == ["cancelled", None], answers
        await eventually(lambda: all(w.answered >= 10 for w in workers), "traffic on every socket")
        drain = asyncio.get_running_loop().create_task(ws.on_shutdown(client.app))
        done, _ = await asyncio.wait({drain}, timeout=DEADLINE)
        assert drain in done, (
            f"the drain was still waiting after {DEADLINE} s (drain_grace is 30 s); "
            f"requests still counted as running: {[s.running for s in ws.hub]}"
        )
        await asyncio.wait_for(asyncio.gather(*traffic), DEADLINE)
        assert [w.close_code for w in workers] == [1001] * 20
        opcode, payload = await read_frame(reader)
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1001)
        assert ws.stats.drained == 21
    finally:
        if drain is not None:
            drain.cancel()
        for task in traffic:
            task.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
