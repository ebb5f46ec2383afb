"""Encode-once fan-out: one RFC 6455 frame per publication, written whole to every transport."""

import asyncio
import base64
import hashlib
from typing import Any

import aiohttp

from monument_ws import protocol
from tests.conftest import DEADLINE, Connect

LENGTHS = [0, 1, 125, 126, 1000, 65535, 65536, 200_000]


async def frames_server(payloads: list[bytes]) -> tuple[asyncio.Server, int]:
    """A bare WebSocket server: the RFC 6455 handshake by hand, then each payload written as
    one ``protocol.text_frame``, nothing else (no aiohttp on this side)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handshake_and_write(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def handshake_and_write(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        accept = base64.b64encode(hashlib.sha1(key + guid).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        for payload in payloads:
            writer.write(protocol.text_frame(payload))
        await reader.readexactly(2)  # the client's close frame begins: answer it with ours
        writer.write(b"\x88\x00")
        await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_text_frames_are_read_back_whole_by_aiohttps_client():
    """protocol.text_frame (the frame writer fan-out and the send path use) against aiohttp's
    public client API: every length, across the 7-bit, 16-bit and 64-bit length forms, is
    one text message with exactly the payload."""
    payloads = [bytes([65 + n % 26]) * length for n, length in enumerate(LENGTHS)]
    server, port = await frames_server(payloads)
    async with (
        server,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/") as ws,
    ):
        for payload in payloads:
            msg = await ws.receive(timeout=DEADLINE)
            assert msg.type is aiohttp.WSMsgType.TEXT, msg
            assert msg.data.encode() == payload


async def test_order_is_kept_across_fast_and_queued_writes(make_server, connect: Connect):
    """A burst larger than the transport's high-water mark arrives complete and in order."""
    client, ws = await make_server(send_buffer_frames=100_000, send_buffer_bytes=100_000_000)
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
