"""This process's sockets by client id: what reaches one client, kicks, and the drain.

* Send-to-client is at most once and not recoverable: the frame goes to the
  send buffer of each of the client's sockets here, if it has any.
* A peer-queue nudge instead makes each of the client's sockets read its peer
  queue; if that fails the messages stay in the queue, and the client gets
  them after its next reconnect.
* A kick closes the sockets it names (a client id's, a channel's subscribers,
  or all) with 4409, each in a task of its own, so the broker's listener never
  waits on a close.
* The broker's registry of which process holds which client id is told when
  a client's first socket arrives here and when its last one leaves.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine, Iterator
from typing import Any

from ..brokers.base import Broker
from ..connection.socket import Socket
from ..protocol.errors import Unavailable
from ..protocol.frames import CloseCode
from .kick import Kick
from .peer_queues import NUDGE, PeerQueues
from .recovery import Subscriptions

log = logging.getLogger("monument_ws")


class Registry:
    """The live local sockets, by client id."""

    def __init__(self, broker: Broker, queues: PeerQueues, subscriptions: Subscriptions) -> None:
        self._broker = broker
        self._queues = queues
        self._subscriptions = subscriptions
        self._by_client: dict[str, set[Socket]] = {}
        self._count = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Socket]:
        for sockets in list(self._by_client.values()):
            yield from list(sockets)

    async def add(self, socket: Socket) -> None:
        sockets = self._by_client.setdefault(socket.client_id, set())
        sockets.add(socket)
        self._count += 1
        if len(sockets) == 1:
            await self._broker.register_client(socket.client_id)

    async def remove(self, socket: Socket) -> None:
        """Forget ``socket`` (its subscriptions are not this registry's business)."""
        sockets = self._by_client.get(socket.client_id)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        self._count -= 1
        if not sockets:
            del self._by_client[socket.client_id]
            await self._broker.unregister_client(socket.client_id)

    def of_client(self, client_id: str) -> list[Socket]:
        """The live sockets of ``client_id`` on this process (usually zero or one)."""
        return list(self._by_client.get(client_id, ()))

    async def drain(self, period: float, batch: int, grace: float, reason: str) -> int:
        """Close every socket with 1001, ``batch`` at a time, spread evenly over ``period`` s.

        Phoenix's drainer, sized to the period: ``ceil(n / batch)`` batches, one
        every ``period / batches`` seconds, so the clients' reconnects reach the
        other processes at an even rate instead of all in the same second (a
        few sockets, one batch: closed at once). The pauses are relative, so a
        busy process stretches the drain but never bunches it up. Each socket
        of a batch first stops taking requests and lets its running ones
        answer (up to ``grace`` seconds, :meth:`Socket.finish`), then closes.
        Returns how many sockets it closed, once every close has finished.
        """
        sockets = list(self)
        if not sockets:
            return 0
        batches = math.ceil(len(sockets) / batch)
        interval = period / batches
        log.info("draining %d sockets in %d batches over %.3g s", len(sockets), batches, period)
        closing: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        for index in range(batches):
            if index:
                await asyncio.sleep(interval)
            for socket in sockets[index * batch : (index + 1) * batch]:
                if not socket.closed:
                    closing.append(loop.create_task(self._drain_one(socket, grace, reason)))
        await asyncio.gather(*closing, return_exceptions=True)
        return len(closing)

    @staticmethod
    async def _drain_one(socket: Socket, grace: float, reason: str) -> None:
        await socket.finish(grace)
        await socket.close(CloseCode.GOING_AWAY, reason)

    def targets(self, kick: Kick) -> list[Socket]:
        """The local sockets ``kick`` names: every one, those of a client id, or the
        subscribers of a channel (a user's or session's sockets all join its reserved one)."""
        if kick.by == "all":
            return list(self)
        channel = kick.channel
        if channel is None:
            return self.of_client(kick.target)
        return self._subscriptions.subscribers(channel)

    def deliver_control(self, message: bytes) -> None:
        """A control message from the broker: a kick closes the local sockets it names."""
        kick = Kick.decode(message)
        if kick is None:
            log.warning("ignored a control message that is not a kick: %r", message[:100])
            return
        for socket in self.targets(kick):
            self._spawn(socket.close(CloseCode.KICKED, kick.reason))

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        """``frame`` to the client's sockets here; a peer-queue nudge makes them read their queue."""
        if frame == NUDGE:
            for socket in self.of_client(client_id):
                self._spawn(self._deliver_queued(socket))
            return
        for socket in self.of_client(client_id):
            socket.send_raw_nowait(frame)

    async def _deliver_queued(self, socket: Socket) -> None:
        try:
            await self._queues.deliver(socket)
        except Unavailable as exc:
            log.warning("delivering queued messages to %s failed: %s", socket.client_id, exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
