"""The send path alone: one writer, order, the bound, overflow, drain and close.

A fake transport stands in for the socket and behaves as asyncio's does: a
write lands in its buffer, the protocol is paused above the high-water mark
and resumed at the low-water mark, and the test plays the client by taking
bytes out of the buffer (or not). The invariants of :mod:`monument_ws.connection.sender`
are checked on the sender's own counters and on every write the fake saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monument_ws import signals
from monument_ws.connection.sender import Sender
from monument_ws.connection.stats import Stats
from monument_ws.protocol.writer import text_frame
from tests.conftest import Connect, eventually, masked_text, open_raw, welcomed

HIGH, LOW = 1024, 256


class FakeTransport:
    """asyncio's flow control without a network: the test decides what the client reads."""

    def __init__(self) -> None:
        self.buffered = 0
        self.written: list[bytes] = []
        self.peak = 0  # the most ever buffered right after a write
        self.closing = False
        self.resumed = asyncio.Event()
        self.resumed.set()

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.written.append(data)
        self.buffered += len(data)
        self.peak = max(self.peak, self.buffered)
        if self.buffered > HIGH:
            self.resumed.clear()

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return LOW, HIGH

    def read(self, n: int) -> None:
        """The client reads ``n`` bytes."""
        self.buffered = max(0, self.buffered - n)
        if self.buffered <= LOW:
            self.resumed.set()

    async def drain(self) -> None:
        if self.closing:
            raise ConnectionResetError("lost")
        await self.resumed.wait()
        if self.closing:
            raise ConnectionResetError("lost")

    def lose(self) -> None:
        self.closing = True
        self.resumed.set()


def make(transport: FakeTransport, max_frames: int = 100, max_bytes: int = 10_000) -> Sender:
    return Sender(transport, transport, max_frames=max_frames, max_bytes=max_bytes, stats=Stats())


def payloads(written: list[bytes]) -> list[bytes]:
    """The JSON payloads of the text frames written, one write holding one frame or a gathered
    run of them (none of the tests' frames is 64 KiB or more)."""
    stream, out, at = b"".join(written), [], 0
    while at < len(stream):
        length, at = stream[at + 1], at + 2
        if length == 126:
            length, at = int.from_bytes(stream[at : at + 2], "big"), at + 2
        out.append(stream[at : at + length])
        at += length
    return out


async def test_an_idle_sender_writes_at_once_without_a_task():
    """Nothing queued and room in the transport: written in the call, no writer task."""
    transport = FakeTransport()
    sender = make(transport)
    assert sender.offer(b'{"event":"a"}')
    assert transport.written == [text_frame(b'{"event":"a"}')]
    assert not sender.busy
    assert sender.peak_writers == 0


async def test_a_paused_transport_queues_and_one_writer_writes_in_order():
    """Above the high-water mark frames queue; once the client reads they go out in order."""
    transport = FakeTransport()
    sender = make(transport)
    transport.write(b"x" * (HIGH + 1))  # a client that stopped reading
    frames = [b'{"n":%d}' % i for i in range(20)]
    assert all(sender.offer(f) for f in frames)
    assert sender.queued == 20
    assert sender.busy
    await asyncio.sleep(0)
    assert len(transport.written) == 1  # still paused: nothing more written
    transport.read(10**6)
    await sender.drain()
    assert payloads(transport.written[1:]) == frames
    assert sender.peak_writers == 1
    assert not sender.busy
    assert sender.queued_bytes == 0


async def test_many_producers_in_one_loop_turn_never_start_two_writers():
    """Finding 1 of the socket-core issue, socket-free: producers that run in the same loop
    turn while the client does not read get one writer, and the queue keeps its bound."""
    transport = FakeTransport()
    sender = make(transport, max_frames=1000, max_bytes=4_000)
    big = b'{"pad":"' + b"p" * 90 + b'"}'

    async def publisher() -> None:
        for _ in range(50):
            sender.offer(big)
            await asyncio.sleep(0)

    transport.write(b"x" * (HIGH + 1))
    await asyncio.gather(*(publisher() for _ in range(4)))
    assert sender.peak_writers == 1
    assert sender.peak_bytes <= 4_000
    assert sender.overflow is not None
    assert sender.closed
    assert not sender.offer(big)
    assert transport.peak <= HIGH + 1  # nothing was written past the mark


async def test_overflow_by_frames_or_bytes_drops_the_queue_once():
    """The frame that crosses either limit is refused, the queue dropped; overflow says what it
    held, and is not overwritten by later refusals."""
    for max_frames, max_bytes in ((5, 10**6), (10**6, 50)):
        transport = FakeTransport()
        sender = make(transport, max_frames=max_frames, max_bytes=max_bytes)
        transport.write(b"x" * (HIGH + 1))
        accepted = 0
        while sender.offer(b'{"n":12345}'):
            accepted += 1
        assert accepted == min(max_frames, max_bytes // len(text_frame(b'{"n":12345}')))
        frame_size = len(text_frame(b'{"n":12345}'))
        assert sender.overflow == (accepted, accepted * frame_size)
        assert sender.queued == 0
        assert sender.queued_bytes == 0
        assert not sender.offer(b"{}")
        assert sender.overflow == (accepted, accepted * frame_size)


async def test_send_waits_while_the_queue_is_over_half_full():
    """send() returns only once the queue drained below half; offer() never waits."""
    transport = FakeTransport()
    sender = make(transport, max_frames=10)
    transport.write(b"x" * (HIGH + 1))
    for _ in range(5):
        assert await sender.send(b"{}")
    waiting = asyncio.get_running_loop().create_task(sender.send(b"{}"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    transport.read(10**6)
    assert await asyncio.wait_for(waiting, 5)
    assert sender.overflow is None


async def test_close_refuses_frames_releases_drain_and_stops_the_writer():
    """After close(): offers refused, drain() returns, the writer writes nothing more."""
    transport = FakeTransport()
    sender = make(transport)
    transport.write(b"x" * (HIGH + 1))
    for _ in range(3):
        sender.offer(b"{}")
    draining = asyncio.get_running_loop().create_task(sender.drain())
    await asyncio.sleep(0)
    assert sender.close() == 3
    await asyncio.wait_for(draining, 5)
    transport.read(10**6)
    await asyncio.sleep(0.01)
    assert len(transport.written) == 1
    assert not sender.busy
    assert not sender.offer(b"{}")


async def test_a_lost_transport_ends_the_writer_and_refuses_frames():
    """The connection drops while frames wait: the writer ends, the queue goes, offers fail."""
    transport = FakeTransport()
    sender = make(transport)
    transport.write(b"x" * (HIGH + 1))
    sender.offer(b"{}")
    await asyncio.sleep(0)
    transport.lose()
    await asyncio.wait_for(sender.drain(), 5)
    assert sender.closed
    assert not sender.busy
    assert sender.overflow is None
    assert not sender.offer(b"{}")


async def test_a_sender_without_a_transport_is_closed():
    """A connection lost before its socket was made: every frame is refused."""
    sender = Sender(None, FakeTransport(), max_frames=1, max_bytes=1024, stats=Stats())
    assert sender.closed
    assert not sender.offer(b"{}")


async def test_frames_gathered_in_one_turn_go_out_in_one_write_in_order():
    """Between gather() and flush() frames are held, whatever their kind, and written in one
    write in the order they were accepted; after flush() the sender writes at once again."""
    transport = FakeTransport()
    sender = make(transport)
    shared = text_frame(b'{"n":1}')
    assert sender.gather()
    assert not sender.gather()  # already gathering
    assert sender.offer(b'{"n":1}', shared)
    assert sender.offer(b'{"n":2}')
    assert sender.offer(b'{"n":3}', text_frame(b'{"n":3}'))
    assert transport.written == []
    assert sender.flush()
    assert len(transport.written) == 1
    assert payloads(transport.written) == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert sender.offer(b'{"n":4}')
    assert len(transport.written) == 2


async def test_gathering_past_the_high_water_mark_writes_early():
    """A gathered run never holds more than the high-water mark: past it, it is written."""
    transport = FakeTransport()
    sender = make(transport, max_bytes=100_000)
    frames = [b'{"n":%d,"p":"%s"}' % (i, b"p" * 300) for i in range(10)]
    assert sender.gather()
    for frame in frames:
        assert sender.offer(frame)
    assert transport.written, "nothing written although the gathered bytes passed HIGH"
    assert all(len(w) <= HIGH + 400 for w in transport.written)
    assert sender.flush()
    while sender.busy:
        transport.read(10**9)
        await asyncio.sleep(0)
    assert payloads(transport.written) == frames


async def test_close_while_gathering_drops_the_gathered_frames():
    """Closing drops what was gathered (counted as dropped); a closed sender cannot gather."""
    transport = FakeTransport()
    sender = make(transport)
    assert sender.gather()
    assert sender.offer(b'{"n":1}')
    assert sender.offer(b'{"n":2}')
    assert sender.close() == 2
    assert sender.flush()  # nothing left to write
    assert transport.written == []
    assert not sender.gather()


async def test_a_compressing_sender_does_not_gather():
    """With compression aiohttp frames each payload, so frames are not gathered."""
    transport = FakeTransport()
    written: list[bytes] = []

    async def write_frame(payload: bytes) -> None:
        written.append(payload)

    sender = Sender(
        transport, transport, max_frames=10, max_bytes=1000, stats=Stats(), write_frame=write_frame
    )
    assert not sender.gather()


steps = st.lists(
    st.one_of(
        st.tuples(st.just("offer"), st.integers(1, 4), st.integers(10, 120)),
        st.tuples(st.just("send"), st.integers(1, 2), st.integers(10, 120)),
        st.tuples(st.just("read"), st.integers(0, 3000), st.just(0)),
        st.tuples(st.just("turn"), st.just(0), st.just(0)),
        st.tuples(st.just("gather"), st.just(0), st.just(0)),
        st.tuples(st.just("flush"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_any_interleaving_keeps_order_and_the_bound(steps):
    """Random producers (several per loop turn, waiting or not), gathering for one write and
    random client reads: frames arrive in accepted order, the queue never passes its limits,
    the transport never holds more than the high-water mark plus one write (a gathered write
    is at most the high-water mark plus one frame), and never two writers at once."""
    asyncio.run(_interleave(steps))


async def _interleave(steps: list[tuple[str, int, int]]) -> None:
    max_frames, max_bytes = 12, 900
    transport = FakeTransport()
    sender = make(transport, max_frames=max_frames, max_bytes=max_bytes)
    accepted: list[bytes] = []
    pending: list[asyncio.Task[Any]] = []
    counter = 0

    def frame(size: int) -> bytes:
        nonlocal counter
        counter += 1
        return b'{"n":%d,"p":"%s"}' % (counter, b"p" * size)

    async def send_one(payload: bytes) -> None:
        # accepted when send() returns True; recorded before the await so order is kept
        if sender.offer(payload):
            accepted.append(payload)
            if sender.queued_bytes and sender.pressed:
                await sender.drain()

    for op, count, size in steps:
        if op == "offer":
            for _ in range(count):
                payload = frame(size)
                if sender.offer(payload):
                    accepted.append(payload)
        elif op == "send":
            for _ in range(count):
                pending.append(asyncio.get_running_loop().create_task(send_one(frame(size))))
        elif op == "read":
            transport.read(count)
        elif op == "gather":
            sender.gather()
        elif op == "flush":
            sender.flush()
        await asyncio.sleep(0)
        assert sender.peak_writers <= 1
        assert sender.queued <= max_frames
        assert sender.queued_bytes <= max_bytes
    sender.flush()
    transport.read(10**9)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    while sender.busy:
        transport.read(10**9)
        await asyncio.sleep(0)
    assert sender.peak_frames <= max_frames
    assert sender.peak_bytes <= max_bytes
    assert transport.peak <= HIGH + max((len(w) for w in transport.written), default=0)
    assert all(len(w) <= HIGH + 200 for w in transport.written)  # frames here are < 200 bytes
    assert sender.peak_writers <= 1
    written = payloads(transport.written)
    if (
        sender.overflow is not None
    ):  # the queue was dropped: what was written is a prefix of what was accepted
        assert written == accepted[: len(written)]
    else:
        assert written == accepted


# --- over a real socket ------------------------------------------------------------

BIG = "x" * 20_000
#: One publication of BIG as a WebSocket frame, roughly (payload, envelope, header).
FRAME = 21_000


async def test_a_slow_consumer_among_concurrent_publishers_is_closed_4008_within_its_bound(
    make_server, connect: Connect
):
    """A never-reading subscriber of a channel four clients publish to concurrently: 4008, with
    its transport buffer within send_buffer_bytes + 64 KiB + a frame and no pile of writer tasks."""
    limit = 1_048_576
    client, ws = await make_server(
        send_buffer_frames=1024, send_buffer_bytes=limit, heartbeat=0, rate_limit=0
    )
    ws.namespaces.add("chat", publish="subscribers", history_size=0)
    seen: list[Any] = []
    ws.bus.on(signals.SOCKET_CONNECTED, lambda event, *, socket, **_: seen.append(socket))
    _reader, writer = await open_raw(client, rcvbuf=4096)
    await eventually(lambda: len(seen) == 1, "the slow socket")
    slow = seen[0]
    writer.write(
        masked_text(
            json.dumps({"event": "ws:subscribe", "id": 1, "data": {"channel": "chat"}}).encode()
        )
    )
    await writer.drain()
    await eventually(lambda: ws.hub.subscribed(slow, "chat"), "the slow subscription")

    publishers = [await connect(client) for _ in range(4)]
    for peer in publishers:
        answer = await peer.request({"event": "ws:subscribe", "id": 0, "data": {"channel": "chat"}})
        assert "error" not in answer, answer

    async def discard(peer: Any) -> None:
        with contextlib.suppress(Exception):
            while not peer.ws.closed:
                msg = await peer.ws.receive()
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return

    readers = [asyncio.create_task(discard(peer)) for peer in publishers]
    transport = slow.request.transport
    assert transport is not None
    loop = asyncio.get_running_loop()

    def extra_tasks() -> int:
        """Live tasks that are not requests being served (those are bounded by max_inflight)."""
        return len(asyncio.all_tasks()) - sum(int(socket.running) for socket in ws.hub)

    baseline = extra_tasks()
    peak_buffer = peak_tasks = 0

    async def publish(peer: Any, round_: int) -> None:
        for i in range(15):
            frame = {
                "event": "ws:publish",
                "id": round_ * 100 + i + 1,
                "data": {"channel": "chat", "event": "msg", "data": BIG},
            }
            await peer.ws.send_str(json.dumps(frame))

    async def sample(seconds: float) -> None:
        nonlocal peak_buffer, peak_tasks
        until = loop.time() + seconds
        while loop.time() < until and not slow.closed:
            peak_buffer = max(peak_buffer, transport.get_write_buffer_size())
            peak_tasks = max(peak_tasks, extra_tasks() - baseline)
            await asyncio.sleep(0.005)

    try:
        for round_ in range(60):  # at most 6 s of publishing
            if slow.closed:
                break
            # Clients' publications and the server's own, several in one turn of the loop.
            await asyncio.gather(
                *(publish(peer, round_) for peer in publishers),
                *(ws.publish("chat", "msg", BIG) for _ in range(4)),
                sample(0.1),
            )
        observed = (
            f"transport buffer peaked at {peak_buffer} bytes, {peak_tasks} tasks above the "
            f"baseline, slow_consumers={ws.stats.slow_consumers}, closed={slow.closed}"
        )
        assert peak_buffer <= limit + 64 * 1024 + FRAME, observed
        assert peak_tasks <= 40, observed  # 9 are this test's own (the gather)
        await eventually(lambda: slow not in list(ws.hub), "the slow consumer dropped")
        assert slow.closed
        assert ws.stats.slow_consumers == 1  # closed as a slow consumer (4008), not otherwise
        # the send path's own counters: never two writers, the queue within its bound
        assert slow.sender.peak_writers == 1
        assert 0 < slow.sender.peak_bytes <= limit
    finally:
        for task in readers:
            task.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_with_compression_every_frame_goes_through_the_writer_deflated(make_server):
    """compression=True: replies, pushes and channel publications reach a client that offered
    permessage-deflate, in order, each frame through the one writer (aiohttp deflates it)."""
    client, ws = await make_server(compression=True, heartbeat=0)
    ws.handler("echo")(lambda message, socket: message.data)
    sock = await client.ws_connect("/ws", protocols=("monument.v1",), compress=15)
    assert sock.compress == 15  # the extension was agreed
    peer = await welcomed(sock)
    (server_socket,) = list(ws.hub)
    assert server_socket._ws.compress  # the server deflates what it sends
    big = "z" * 20_000
    assert (await peer.request({"event": "ws:subscribe", "id": "s", "data": {"channel": "c"}}))[
        "data"
    ]["channel"] == "c"
    for i in range(20):
        await peer.send({"event": "echo", "id": i, "data": [i, big]})
    await ws.publish("c", "news", {"n": 1})
    got = [await peer.recv() for _ in range(21)]
    answers = [g for g in got if g.get("event") == "echo"]
    assert [a["id"] for a in answers] == list(range(20))
    assert all(a["data"] == [a["id"], big] for a in answers)
    assert [g["data"] for g in got if g.get("channel") == "c"] == [{"n": 1}]
    assert server_socket.sender.peak_writers == 1
    assert server_socket.sender.queued_bytes == 0
    await peer.close()
