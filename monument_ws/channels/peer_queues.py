"""Peer queues (@owlmeans/socket's enqueue/consume): messages that wait for the peer to take them.

A message enqueued for a peer is not handed to a handler: it waits in that
peer's queue until the peer consumes it, optionally picking the first one a
filter accepts. Both directions exist, keyed by the server-issued
``client_id`` (so they survive a reconnect with the ``resume`` secret, to any
process sharing the broker):

* **server → client**: ``await ws.enqueue(client_id, data)`` (or
  ``socket.enqueue(data)``) stores the message in the broker box
  ``out:<client_id>`` and nudges the process holding the client, which pushes
  ``{"event": "ws:enqueue", "seq": n, "data": ...}``. The client keeps it in
  its local queue until ``client.consume()``. A client that reconnects passes
  ``queued=<highest seq it has>`` on the upgrade URL; the server drops those
  from the box and pushes the rest, in order.
* **client → server**: the client sends ``{"event": "ws:enqueue", "id": n,
  "data": ...}``; the reply ``{"seq": n}`` means it is stored in the broker
  box ``in:<client_id>``. ``await socket.consume(filter)`` takes the oldest
  message the filter accepts, on whichever process the client is connected to
  now.

Guarantees and bounds: each box keeps at most ``peer_queue_size`` messages (the
oldest is dropped first) for at most ``peer_queue_ttl`` seconds each (both in the
config schema); pushes to one socket are in ``seq`` order and a client drops
any ``seq`` it already has, so a message reaches the client's local queue at
most once, and at least once while it is in the box. ``consume`` removes
atomically: of two consumers racing for one message exactly one gets it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

import orjson

from ..brokers.base import Broker
from ..protocol.frames import QUEUE_EVENT, QUEUED_PARAM, Queued

__all__ = ["NUDGE", "QUEUED_PARAM", "QUEUE_EVENT", "PeerQueues", "Queued"]

if TYPE_CHECKING:
    from ..connection.socket import Socket

#: Sent through send-to-client to the process holding a client: "read your box".
#: Frames always start with ``{``, so it can never be mistaken for one.
NUDGE: Final = b"\x00queue"

Filter = Callable[[Any], bool]


def out_box(client_id: str) -> str:
    return f"out:{client_id}"


def in_box(client_id: str) -> str:
    return f"in:{client_id}"


def queued_frame(seq: int, item: bytes) -> bytes:
    """``{"event": "ws:enqueue", "seq": n, "data": ...}`` from the already encoded data."""
    return b'{"event":"ws:enqueue","seq":%d,"data":%s}' % (seq, item)


class PeerQueues:
    """The peer queues of every client, stored in the broker."""

    def __init__(self, broker: Broker, size: int, ttl: float) -> None:
        self.broker = broker
        self.size = size
        self.ttl = ttl
        # per socket: the highest seq pushed to it, and a lock so pushes stay in order
        self._cursors: weakref.WeakKeyDictionary[Socket, tuple[list[int], asyncio.Lock]] = (
            weakref.WeakKeyDictionary()
        )

    # --- server → client --------------------------------------------------------

    async def enqueue(self, client_id: str, data: Any) -> int:
        """Queue ``data`` for ``client_id`` (connected anywhere, or not yet); returns its seq.

        Raises TypeError for data JSON cannot hold and Unavailable when the broker is down.
        """
        seq = await self.broker.queue_push(
            out_box(client_id), orjson.dumps(data), size=self.size, ttl=self.ttl
        )
        await self.broker.send_to_client(client_id, NUDGE)
        return seq

    async def resume(self, socket: Socket, had: int) -> None:
        """A client reconnected holding everything up to ``had``: forget that, push the rest."""
        if had > 0:
            await self.broker.queue_remove(out_box(socket.client_id), had, through=True)
        cursor, _ = self._cursor(socket)
        cursor[0] = max(cursor[0], had)
        await self.deliver(socket)

    async def deliver(self, socket: Socket) -> None:
        """Push what ``socket``'s client has not been sent yet, in order."""
        cursor, lock = self._cursor(socket)
        async with lock:
            for seq, item in await self.broker.queue_read(out_box(socket.client_id), cursor[0]):
                if not socket.send_raw_nowait(queued_frame(seq, item)):
                    return
                cursor[0] = seq

    def _cursor(self, socket: Socket) -> tuple[list[int], asyncio.Lock]:
        entry = self._cursors.get(socket)
        if entry is None:
            entry = self._cursors[socket] = ([0], asyncio.Lock())
        return entry

    # --- client → server --------------------------------------------------------

    async def put(self, client_id: str, data: Any) -> int:
        """Store a message the client enqueued for the server; returns its seq."""
        return await self.broker.queue_push(
            in_box(client_id), orjson.dumps(data), size=self.size, ttl=self.ttl
        )

    async def consume(self, client_id: str, accept: Filter | None = None) -> Queued | None:
        """Take the oldest message from ``client_id`` that ``accept`` accepts (None: any)."""
        box = in_box(client_id)
        for seq, item in await self.broker.queue_read(box, 0):
            data = orjson.loads(item)
            if accept is not None and not accept(data):
                continue
            if await self.broker.queue_remove(box, seq):
                return Queued(data, seq)
        return None

    async def pending(self, client_id: str) -> int:
        """How many messages from ``client_id`` wait to be consumed."""
        return len(await self.broker.queue_read(in_box(client_id), 0))
