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
