"""Channel subscriptions that survive reconnects, and recovery of what was missed.

Each subscription remembers the newest offset it received and the epoch of the
channel's history. After a reconnect the client resubscribes every channel by
itself with ``since``; the server replays what was missed from history and says
whether that filled the gap (``recovered``). A resubscribe refused as
``unavailable`` or ``timeout`` (a broker overloaded by everyone reconnecting at
once) is retried with backoff while the connection lasts; any other refusal is
reported as ``ws:error`` with the channel. When the server lost the history itself
(``ws:resubscribe``), the subscription forgets its offset and joins afresh.

Publications reach the handler in offset order; one at or below the offset already
received is a duplicate (a replay overlapping live traffic) and is dropped. A sync
handler runs before the next frame is read; an async one runs in its own task.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..protocol.backoff import Backoff
from ..protocol.errors import MonumentWSError, Timeout, Unavailable
from .calls import Calls
from .listeners import Listeners
from .status import Status
from .tasks import Tasks

# __package__, not __name__: the whole client logs as monument_ws.client.
log = logging.getLogger(__package__)


@dataclass(frozen=True, slots=True)
class Message:
    """One channel publication as a subscriber receives it."""

    channel: str
    event: str
    data: Any
    offset: int


class Unsubscribes(Protocol):
    """What a :class:`Subscription` needs of its client."""

    async def unsubscribe(self, channel: str) -> None: ...


class Subscription:
    """A channel this client is subscribed to; survives reconnects.

    ``offset`` is the newest publication received, ``epoch`` the history it
    belongs to; after a reconnect the client resubscribes with ``since`` and
    ``recovered`` tells whether every missed publication was replayed (False:
    some were lost; reload the state from elsewhere). Publications at or below
    ``offset`` are dropped as duplicates.
    """

    def __init__(
        self, client: Unsubscribes, channel: str, handler: Callable[[Message], Any], query: Any
    ) -> None:
        self.client = client
        self.channel = channel
        self.handler = handler
        self.query = query
        self.offset = 0
        self.epoch: str | None = None
        self.recovered: bool | None = None
        self.active = True

    async def unsubscribe(self) -> None:
        await self.client.unsubscribe(self.channel)

    def __repr__(self) -> str:
        return f"<Subscription {self.channel} offset={self.offset} recovered={self.recovered}>"


class Channels:
    def __init__(
        self,
        calls: Calls,
        status: Status,
        listeners: Listeners,
        tasks: Tasks,
        backoff: Backoff,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._calls = calls
        self._status = status
        self._listeners = listeners
        self._tasks = tasks
        self._backoff = backoff
        self._sleep = sleep
        self._subscriptions: dict[str, Subscription] = {}

    @property
    def subscriptions(self) -> dict[str, Subscription]:
        """A copy: the channels subscribed now."""
        return dict(self._subscriptions)

    async def subscribe(self, subscription: Subscription) -> Subscription:
        """Join the channel; raises ValueError when it is already subscribed, and the
        server's error when it refuses (the subscription is then forgotten)."""
        channel = subscription.channel
        if channel in self._subscriptions:
            raise ValueError(f"already subscribed to {channel!r}; unsubscribe first")
        self._subscriptions[channel] = subscription
        try:
            await self._join(subscription)
        except BaseException:
            self._subscriptions.pop(channel, None)
            raise
        return subscription

    async def unsubscribe(self, channel: str) -> None:
        subscription = self._subscriptions.pop(channel, None)
        if subscription is not None:
            subscription.active = False
            await self._calls.call("ws:unsubscribe", {"channel": channel})

    async def publish(self, channel: str, event: str, data: Any, exclude_self: bool) -> int:
        frame = {"channel": channel, "event": event, "data": data}
        if exclude_self is not False:  # anything but False goes to the server to validate
            frame["exclude_sender"] = exclude_self
        reply = await self._calls.call("ws:publish", frame)
        return int(reply["offset"])

    def rejoin_all(self) -> None:
        """After a reconnect: resubscribe every channel with ``since``, each in its own task."""
        for subscription in list(self._subscriptions.values()):
            self._tasks.spawn(self._rejoin(subscription))

    def restart(self, channel: object) -> None:
        """The server lost the history between us (``ws:resubscribe``, e.g. a broker
        restart): offsets start again in a new epoch, so forget ours and rejoin fresh."""
        subscription = self._find(channel)
        if subscription is not None:
            subscription.offset = 0
            subscription.epoch = None
            self._tasks.spawn(self._rejoin(subscription))

    def publication(self, frame: dict[str, Any]) -> None:
        subscription = self._find(frame.get("channel"))
        offset = frame.get("offset")
        if subscription is None or not isinstance(offset, int) or offset <= subscription.offset:
            return
        subscription.offset = offset
        message = Message(subscription.channel, str(frame.get("event")), frame.get("data"), offset)
        try:
            result = subscription.handler(message)
        except Exception:
            log.exception("a subscription handler of %r failed", message.channel)
            return
        if inspect.isawaitable(result):
            self._tasks.spawn(result)

    def _find(self, channel: object) -> Subscription | None:
        return self._subscriptions.get(channel) if isinstance(channel, str) else None

    async def _join(self, subscription: Subscription) -> None:
        request: dict[str, Any] = {"channel": subscription.channel}
        if subscription.query is not None:
            request["query"] = subscription.query
        if subscription.epoch is not None:
            request["since"] = {"offset": subscription.offset, "epoch": subscription.epoch}
        reply = await self._calls.call("ws:subscribe", request)
        subscription.epoch = reply["epoch"]
        subscription.recovered = bool(reply["recovered"])
        if not subscription.recovered:
            subscription.offset = int(reply["offset"])

    async def _rejoin(self, subscription: Subscription) -> None:
        attempt = 0
        while True:
            try:
                await self._join(subscription)
                break
            except (Unavailable, Timeout) as exc:
                if not self._status.connected or not subscription.active:
                    return  # the next reconnect resubscribes
                delay = self._backoff.delay(attempt)
                attempt += 1
                log.info(
                    "resubscribing to %r: %s; retrying in %.2f s", subscription.channel, exc, delay
                )
                await self._sleep(delay)
            except MonumentWSError as exc:
                log.warning("resubscribing to %r failed: %s", subscription.channel, exc)
                await self._listeners.emit(
                    "ws:error",
                    {
                        "code": exc.code.value,
                        "message": exc.message,
                        "channel": subscription.channel,
                    },
                )
                return
        await self._listeners.emit(
            "ws:resubscribed",
            {"channel": subscription.channel, "recovered": subscription.recovered},
        )
