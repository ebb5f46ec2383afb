"""Encode-once fan-out: one RFC 6455 frame per publication, written whole to every transport."""

import asyncio
from typing import Any

import pytest
from aiohttp._websocket.writer import WebSocketWriter
from aiohttp.http_websocket import WSMsgType

from monument_ws import protocol
from tests.conftest import Connect


class Collect:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def is_closing(self) -> bool:
        return False


class Protocol:
    _paused = False


@pytest.mark.parametrize("length", [0, 1, 125, 126, 1000, 65535, 65536, 200_000])
async def test_text_frame_matches_aiohttp_framing(length):
    """protocol.text_frame produces the bytes aiohttp's own server writer produces."""
    payload = b"x" * length
    transport = Collect()
    writer = WebSocketWriter(Protocol(), transport, use_mask=False)  # type: ignore[arg-type]
    await writer.send_frame(payload, WSMsgType.TEXT)
    assert protocol.text_frame(payload) == transport.data


async def test_order_is_kept_across_fast_and_queued_writes(make_server, connect: Connect):
    """A burst larger than the transport's high-water mark arrives complete and in order."""
    client, ws = await make_server(send_queue_limit=100_000, send_queue_bytes=100_000_000)
    peer = await connect(client)
    await peer.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "burst"}})
    big = "y" * 5_000
    for i in range(2_000):  # 10 MB: beyond socket buffers, so the queue takes over mid-burst
        await ws.publish("burst", "item", {"i": i, "pad": big})
    received: list[Any] = []
    while len(received) < 2_000:
        frame = await peer.recv()
        received.append(frame["data"]["i"])
    assert received == list(range(2_000))
    await asyncio.sleep(0)


async def test_a_burst_published_in_one_turn_reaches_a_subscriber_in_two_writes_in_order(
    make_server, connect: Connect
):
    """300 publications made in one loop turn: the subscriber's connection gets the first at
    once and the other 299 gathered into one write; all arrive in order, and a frame sent to
    the same socket in that turn after the burst (the reply) arrives after them."""
    client, ws = await make_server()
    writes: list[int] = []

    @ws.handler("watch")
    def watch(message, socket):
        transport = socket.request.transport
        write = transport.write

        def counting(data: bytes) -> None:
            writes.append(len(data))
            write(data)

        transport.write = counting
        return "watching"

    @ws.handler("burst")
    async def burst(message, socket):
        for n in range(300):
            await ws.publish("burst", "item", n)
        return "done"

    peer = await connect(client)
    await peer.request({"event": "ws:subscribe", "id": 1, "data": {"channel": "burst"}})
    assert (await peer.request({"event": "watch", "id": 2}))["data"] == "watching"
    await peer.send({"event": "burst", "id": 3})
    received = [await peer.recv() for _ in range(301)]
    assert [f["data"] for f in received[:300]] == list(range(300))
    assert received[300] == {"event": "burst", "id": 3, "data": "done"}
    # writes: the reply to watch, the first publication, then the other 299 and the reply to
    # burst (sent in the same turn, so gathered behind them)
    assert len(writes) == 3, writes
