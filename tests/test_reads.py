"""monument_ws.reads: each read of a socket's connection asks for 64 KiB, not asyncio's 256 KiB.

The contract with asyncio it rests on -- selector transports read with
``self._sock.recv(self.max_size)`` -- is checked here, so a Python that reads
another way fails this test instead of silently going back to 256 KiB reads.
"""

from __future__ import annotations

import inspect
from asyncio import selector_events
from typing import Any

from monument_ws.connection.reads import READ_SIZE, small_reads


def test_selector_transports_read_max_size_bytes_at_a_time():
    transport_class = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    assert transport_class.max_size > READ_SIZE
    source = inspect.getsource(transport_class._read_ready__data_received)
    assert "self._sock.recv(self.max_size)" in source


def test_a_transport_without_a_read_size_is_left_alone():
    class Other:
        pass

    other = Other()
    small_reads(other)  # type: ignore[arg-type]
    small_reads(None)
    assert not hasattr(other, "max_size")


async def test_a_sockets_connection_reads_64_kib_at_a_time_and_takes_a_large_frame(
    make_server, connect
):
    """Over a real socket: the server's transport reads at most READ_SIZE bytes, and a frame
    four times that size still arrives whole."""
    client, ws = await make_server()
    transports: list[Any] = []

    @ws.handler("size")
    def size(message, socket):
        transports.append(socket.request.transport)
        return len(message.data)

    peer = await connect(client)
    big = "x" * (4 * READ_SIZE)
    assert (await peer.request({"event": "size", "id": 1, "data": big}))["data"] == len(big)
    assert [t.max_size for t in transports] == [READ_SIZE]
