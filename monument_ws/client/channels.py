"""Channel subscriptions that survive reconnects, and recovery of what was missed.

Each subscription remembers the newest offset it received and the epoch of the
channel's history. After a reconnect the client resubscribes every channel by
itself with ``since``; the server replays what was missed from history and says
whether that filled the gap (``recovered``). A resubscribe refused as
``unavailable`` or ``timeout`` (a broker overloaded by everyone reconnecting at
once) is retried with backoff while the connection lasts; any other refusal is
reported as ``ws:error`` with the channel. When the server lost the history itself
(``ws:resubscribe``), the subscription forgets its offset and joins afresh -- or, when the
push names the new ``epoch`` and ``offset`` (the broker delivers the new epoch's
publications next, e.g. after a Redis restart), takes that position and stays subscribed;
either way ``ws:resubscribed`` says ``recovered: false``.

Publications reach the handler in offset order; one at or below the offset already
received is a duplicate (a replay overlapping live traffic) and is dropped. A sync
handler runs before the next frame is read; an async one runs in its own task.

**Reserved channels.** A socket whose session has a user (or a session id) is subscribed by
the server, at the upgrade, to its ``$user:`` and ``$session:`` channels; the welcome's
``channels`` names them with their offset and epoch. Their publications go to the
``on_user`` / ``on_session`` handlers. After a reconnect the server subscribes the new
socket afresh; when the welcome's offset is past the one last received, the client
resubscribes with ``since`` and holds the channel's live publications until the reply, so
the replayed ones and the live ones reach the handlers once each, in offset order.

**Members.** ``Subscription.on("member" | "join" | "leave", listener)`` observes the
channel's ``ws:member`` pushes (presence transitions, in namespaces with
``presence_events``) and ``ws:join`` / ``ws:leave``.
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

#: The prefixes of the reserved channels the server joins a socket to, by kind.
_RESERVED = ("$user:", "$session:")


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
        self,
        client: Unsubscribes,
        channel: str,
        handler: Callable[[Message], Any],
        query: Any = None,
        *,
        label: Any = None,
        meta: Any = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.handler = handler
        self.query = query
        #: sent with every (re)subscribe: this client's presence label and meta
        self.label = label
        self.meta = meta
        self.offset = 0
        self.epoch: str | None = None
        self.recovered: bool | None = None
        self.active = True
        #: publications held while a reserved channel recovers (None: deliver at once)
        self.held: list[dict[str, Any]] | None = None
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}

    def on(self, what: str, listener: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Call ``listener(data)`` for the channel's ``"member"`` pushes (the member record,
        ``state`` one of connected, disconnected, reconnected, removed; namespaces with
        ``presence_events``) or ``"join"`` / ``"leave"`` (``{"client_id"}``; namespaces with
        ``join_leave``). Returns ``listener``; an async one runs in its own task."""
        if what not in ("member", "join", "leave"):
            raise ValueError(f"a subscription emits member, join and leave, not {what!r}")
        self._listeners.setdefault(what, []).append(listener)
        return listener

    def off(self, what: str, listener: Callable[[Any], Any]) -> None:
        listeners = self._listeners.get(what, [])
        if listener in listeners:
            listeners.remove(listener)

    def listeners(self, what: str) -> list[Callable[[Any], Any]]:
        """A copy of the listeners of ``what`` (the client calls them)."""
        return list(self._listeners.get(what, ()))

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
        #: the reserved channels by kind (``user``, ``session``), and their handlers
        self._reserved: dict[str, Subscription] = {}
        self._reserved_handlers: dict[str, list[Callable[[Message], Any]]] = {
            "user": [],
            "session": [],
        }

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

    async def presence(
        self, channel: str, limit: int | None = None, cursor: str | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"channel": channel}
        if limit is not None:
            request["limit"] = limit
        if cursor is not None:
            request["cursor"] = cursor
        reply: dict[str, Any] = await self._calls.call("ws:presence", request)
        return reply

    async def history(self, channel: str, page: dict[str, Any]) -> dict[str, Any]:
        request = {"channel": channel, **{k: v for k, v in page.items() if v is not None}}
        reply: dict[str, Any] = await self._calls.call("ws:history", request)
        return reply

    async def publish(
        self,
        channel: str,
        event: str,
        data: Any,
        exclude_self: bool,
        idempotency_key: str | None = None,
    ) -> int:
        frame = {"channel": channel, "event": event, "data": data}
        if exclude_self is not False:  # anything but False goes to the server to validate
            frame["exclude_sender"] = exclude_self
        if idempotency_key is not None:  # the server validates it (bad_frame)
            frame["idempotency_key"] = idempotency_key
        reply = await self._calls.call("ws:publish", frame)
        return int(reply["offset"])

    def rejoin_all(self) -> None:
        """After a reconnect: resubscribe every channel with ``since``, each in its own task."""
        for subscription in list(self._subscriptions.values()):
            self._tasks.spawn(self._rejoin(subscription))

    async def restart(self, data: dict[str, Any]) -> None:
        """The server lost the history between us (``ws:resubscribe``, e.g. a broker
        restart): offsets start again in a new epoch. With ``epoch`` and ``offset`` in the push
        the server goes on delivering from that position on this subscription: take it (not
        recovered). Without them, forget ours and rejoin fresh."""
        subscription = self._find(data.get("channel"))
        if subscription is None:
            return
        epoch, offset = data.get("epoch"), data.get("offset")
        if isinstance(epoch, str) and isinstance(offset, int) and not isinstance(offset, bool):
            subscription.offset, subscription.epoch = offset, epoch
            subscription.recovered = False
            await self._listeners.emit(
                "ws:resubscribed", {"channel": subscription.channel, "recovered": False}
            )
            return
        subscription.offset = 0
        subscription.epoch = None
        self._tasks.spawn(self._rejoin(subscription))

    # --- reserved channels -------------------------------------------------------

    def on_reserved(self, kind: str, handler: Callable[[Message], Any]) -> None:
        self._reserved_handlers[kind].append(handler)

    def off_reserved(self, kind: str, handler: Callable[[Message], Any]) -> None:
        if handler in self._reserved_handlers[kind]:
            self._reserved_handlers[kind].remove(handler)

    def welcomed(self, reserved: object) -> None:
        """A welcome named the reserved channels the socket was subscribed to (``channels``):
        follow them from their offset, or recover what was missed since the last socket."""
        named = reserved if isinstance(reserved, dict) else {}
        for kind in self._reserved_handlers:
            info = named.get(kind)
            known = self._reserved.get(kind)
            if not isinstance(info, dict) or not isinstance(info.get("channel"), str):
                self._reserved.pop(kind, None)
                continue
            if (
                known is not None
                and known.channel == info["channel"]
                and known.epoch is not None
                and (known.epoch != info.get("epoch") or known.offset < int(info["offset"]))
            ):
                known.held = []
                self._tasks.spawn(self._recover(known))
            elif known is None or known.channel != info["channel"]:
                fresh = Subscription(self, info["channel"], self._reserved_handler(kind))
                fresh.offset, fresh.epoch = int(info["offset"]), info.get("epoch")
                self._reserved[kind] = fresh

    def _reserved_handler(self, kind: str) -> Callable[[Message], None]:
        def hand(message: Message) -> None:
            for handler in list(self._reserved_handlers[kind]):
                try:
                    result = handler(message)
                except Exception:
                    log.exception("an on_%s handler failed", kind)
                    continue
                if inspect.isawaitable(result):
                    self._tasks.spawn(result)

        return hand

    async def _recover(self, subscription: Subscription) -> None:
        """Resubscribe a reserved channel with ``since``, then hand over what was held."""
        before = subscription.offset
        try:
            await self._rejoin(subscription)
        finally:
            held, subscription.held = subscription.held or [], None
            if not subscription.recovered:  # nothing was replayed: the live ones still count
                subscription.offset, after = before, subscription.offset
            for frame in sorted(held, key=lambda f: int(f["offset"])):
                self.publication(frame)
            if not subscription.recovered:
                subscription.offset = max(subscription.offset, after)

    # --- what arrives -------------------------------------------------------------

    def member(self, frame: dict[str, Any]) -> None:
        """A ``ws:member``, ``ws:join`` or ``ws:leave`` push: to its subscription's listeners."""
        subscription = self._find(frame.get("channel"))
        if subscription is None:
            return
        what = str(frame.get("event"))[3:]
        for listener in subscription.listeners(what):
            try:
                result = listener(frame.get("data"))
            except Exception:
                log.exception("a %s listener of %r failed", what, subscription.channel)
                continue
            if inspect.isawaitable(result):
                self._tasks.spawn(result)

    def publication(self, frame: dict[str, Any]) -> None:
        subscription = self._find(frame.get("channel"))
        offset = frame.get("offset")
        if subscription is None or not isinstance(offset, int) or offset <= subscription.offset:
            return
        if subscription.held is not None:
            subscription.held.append(frame)
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
        if not isinstance(channel, str):
            return None
        found = self._subscriptions.get(channel)
        if found is None and channel.startswith(_RESERVED):
            # The server delivers a $ channel only to its own sockets; one joined after a
            # ws:auth step is not in the welcome, so it is learnt from its first publication.
            kind = "user" if channel.startswith("$user:") else "session"
            found = self._reserved.get(kind)
            if found is None or found.channel != channel:
                found = self._reserved[kind] = Subscription(
                    self, channel, self._reserved_handler(kind)
                )
        return found

    async def _join(self, subscription: Subscription) -> None:
        request: dict[str, Any] = {"channel": subscription.channel}
        if subscription.query is not None:
            request["query"] = subscription.query
        if subscription.label is not None:
            request["label"] = subscription.label
        if subscription.meta is not None:
            request["meta"] = subscription.meta
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
