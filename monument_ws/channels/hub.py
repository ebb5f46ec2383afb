"""The hub: what the plugin holds of this process's sockets and channels, and the broker's
listener. It composes three parts, one file each:

* :mod:`~monument_ws.channels.registry` -- the sockets by client id: send-to-client and
  peer-queue nudges, kicks, the graceful drain;
* :mod:`~monument_ws.channels.recovery` -- channel subscriptions and the recovery sequence
  (``since``, the buffer until the reply is out, resubscribe after a broker gap);
* :mod:`~monument_ws.channels.fanout` -- publications, join/leave pushes and broadcasts
  written to many sockets, encoded once, gathered per loop turn.

Each module's docstring states its delivery guarantees.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from ..brokers.base import Broker, History, Publication
from ..bus import EventBus
from ..connection.middleware import Middleware
from ..connection.socket import Socket
from .fanout import Fanout
from .peer_queues import PeerQueues
from .recovery import Subscriptions
from .registry import Registry


class Hub:
    """The live local sockets and their channel subscriptions; the broker's listener."""

    #: a publication to every local subscriber of its channel (:meth:`.Fanout.deliver`, bound
    #: here so the broker calls the fan-out directly, the hot path without an extra call)
    deliver: Callable[[Publication], None]

    def __init__(
        self,
        broker: Broker,
        queues: PeerQueues,
        bus: EventBus,
        middleware: Middleware | None = None,
        history: Callable[[str, int, str | None], Awaitable[History]] | None = None,
    ) -> None:
        self._subscriptions = Subscriptions(broker, middleware, bus, history)
        self._fanout = Fanout(self._subscriptions.members, middleware)
        self._registry = Registry(broker, queues, self._subscriptions)
        self.deliver = self._fanout.deliver
        broker.attach(self)

    # --- sockets ----------------------------------------------------------

    def __len__(self) -> int:
        return len(self._registry)

    def __iter__(self) -> Iterator[Socket]:
        return iter(self._registry)

    async def add(self, socket: Socket) -> None:
        await self._registry.add(socket)
        self._fanout.joined(socket)

    async def remove(self, socket: Socket) -> list[str]:
        """Forget ``socket`` and its subscriptions; returns the channels it left."""
        left = await self._subscriptions.leave_all(socket)
        await self._registry.remove(socket)
        self._fanout.left(socket)
        return left

    def of_client(self, client_id: str) -> list[Socket]:
        """The live sockets of ``client_id`` on this process (usually zero or one)."""
        return self._registry.of_client(client_id)

    async def drain(
        self, period: float, batch: int, grace: float, reason: str = "server shutting down"
    ) -> int:
        """Close every socket with 1001 in batches spread over ``period`` s; returns how many
        (:meth:`.Registry.drain`)."""
        return await self._registry.drain(period, batch, grace, reason)

    # --- channels ---------------------------------------------------------

    def channels(self) -> dict[str, int]:
        """Channels with local subscribers, and how many."""
        return self._subscriptions.channels()

    def subscribed(self, socket: Socket, channel: str) -> bool:
        return self._subscriptions.subscribed(socket, channel)

    def subscriptions(self, socket: Socket) -> set[str]:
        return self._subscriptions.of_socket(socket)

    async def subscribe(
        self, socket: Socket, channel: str, since: tuple[int, str] | None = None
    ) -> tuple[dict[str, Any], int]:
        """Subscribe ``socket``, first pushing what it missed ``since``; returns the reply and the
        offset for :meth:`go_live` (:meth:`.Subscriptions.subscribe`)."""
        return await self._subscriptions.subscribe(socket, channel, since)

    def go_live(self, socket: Socket, channel: str, after: int) -> None:
        """End ``socket``'s recovery on ``channel`` once its reply is queued."""
        self._subscriptions.go_live(socket, channel, after)

    async def unsubscribe(self, socket: Socket, channel: str) -> bool:
        """Remove ``socket`` from ``channel``; False if it was not subscribed."""
        return await self._subscriptions.unsubscribe(socket, channel)

    # --- the rest of the broker's listener --------------------------------

    def deliver_ephemeral(self, channel: str, frame: bytes) -> None:
        self._fanout.deliver_ephemeral(channel, frame)

    def deliver_broadcast(self, frame: bytes, exclude: str | None = None) -> None:
        self._fanout.send(list(self._registry), frame, exclude)

    def deliver_to_client(self, client_id: str, frame: bytes) -> None:
        self._registry.deliver_to_client(client_id, frame)

    def deliver_control(self, message: bytes) -> None:
        self._registry.deliver_control(message)

    def resubscribe_all(
        self, channel: str, restarted: str | None = None, after: int | None = None
    ) -> None:
        self._subscriptions.resubscribe_all(channel, restarted, after)
