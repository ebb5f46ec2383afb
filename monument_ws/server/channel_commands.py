"""The ``ws:`` commands about channels that a socket sends: subscribe (with recovery from
``since``), unsubscribe, publish, presence and heartbeat -- and ``ws:enqueue``, a client putting
a message into its own peer queue. Also what the server does to a socket's channels: join its
reserved ``$user:``/``$session:`` channels, revoke one, leave them all when it closes.

Ordering and guarantees:

* One socket's subscribes, unsubscribes and revokes run one at a time, in arrival order (a lock
  per socket). Subscribing to a channel the socket already has is an unsubscribe then a
  subscribe, under that lock, with the new ``since``.
* A subscribe is checked before it changes anything: the form of ``since``, then the channel's
  subscribe policy (for a ``$`` channel: that it is the socket's own user's or session's), the
  namespace's ``authenticated``, and ``max_subscriptions``.
* Recovery: with ``since`` the publications the socket missed are pushed before the reply, and
  live ones arriving meanwhile are held and flushed after it, none twice (see
  :mod:`monument_ws.channels.recovery`). The presence join comes before the reply too, so the
  client may unsubscribe as soon as it has it; ``ws:join`` and ``CHANNEL_SUBSCRIBED`` follow the
  reply.
* ``ws:publish`` with ``"exclude_sender": true`` publishes to everyone but the sender's
  client id (see :meth:`~monument_ws.server.api.ServerAPI.publish`); with
  ``"idempotency_key"`` a retry with the same key (on this channel, within
  ``idempotency_window``) publishes nothing and gets the first publication's offset and epoch.
  The reply is ``{"offset", "epoch"}``; a key that is not a string of 1 to 64 characters
  without control characters is ``bad_frame``.
* Leaving a channel -- unsubscribe, revoke or the socket closing -- leaves presence (closing:
  disconnected, the client may come back; otherwise removed), pushes ``ws:leave`` where the
  namespace says so and emits ``CHANNEL_UNSUBSCRIBED``: once per subscription.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from .. import protocol
from ..bus import EventBus
from ..channels.history import DEFAULT_LIMIT, MAX_OFFSET, check_page
from ..channels.hub import Hub
from ..channels.namespaces import allows
from ..channels.peer_queues import QUEUE_EVENT
from ..channels.presence import Presence
from ..config import ChannelOptions, Config
from ..connection.auth import AUTHENTICATED, channel_of_session, channel_of_user
from ..connection.commands import RequestCommand
from ..connection.socket import Socket
from ..protocol.errors import BadFrame, Forbidden, NotFound, RateLimited, Unauthorized
from ..protocol.frames import Frame
from ..signals import CHANNEL_SUBSCRIBED, CHANNEL_UNSUBSCRIBED, RESERVED_PREFIXES, announce
from .api import ServerAPI
from .refusals import refuse


class ChannelCommands:
    """The channel commands of one plugin instance; :meth:`table` names them for the dispatcher."""

    def __init__(
        self, config: Config, bus: EventBus, hub: Hub, presence: Presence, api: ServerAPI
    ) -> None:
        self.config = config
        self.bus = bus
        self.hub = hub
        self.presence = presence
        self.api = api
        self._locks: weakref.WeakKeyDictionary[Socket, asyncio.Lock] = weakref.WeakKeyDictionary()

    def table(self) -> dict[str, RequestCommand]:
        return {
            "ws:subscribe": self.subscribe,
            "ws:unsubscribe": self.unsubscribe,
            "ws:publish": self.publish,
            "ws:presence": self.presence_list,
            "ws:history": self.history,
            "ws:heartbeat": self.heartbeat,
            QUEUE_EVENT: self.enqueue,
        }

    def _lock(self, socket: Socket) -> asyncio.Lock:
        lock = self._locks.get(socket)
        if lock is None:
            lock = self._locks[socket] = asyncio.Lock()
        return lock

    def _options(self, channel: str) -> ChannelOptions:
        return self.api.namespaces.options(channel)

    @staticmethod
    def _channel_of(frame: Frame) -> tuple[str, dict[str, Any]]:
        data = frame.data
        if not isinstance(data, dict):
            raise BadFrame(f"{frame.event} needs data {{'channel': <name>, ...}}")
        channel = data.get("channel")
        problem = protocol.check_channel(channel)
        if problem is not None:
            raise BadFrame(problem)
        assert isinstance(channel, str)
        return channel, data

    # --- subscribe ----------------------------------------------------------

    async def subscribe(self, socket: Socket, frame: Frame) -> Any:
        channel, data = self._channel_of(frame)
        position = self._since(data.get("since"))
        options = self._options(channel)
        await self._admit(socket, channel, data, options)
        async with self._lock(socket):
            if self.hub.subscribed(socket, channel):
                await self.hub.unsubscribe(socket, channel)
            reply, last = await self.hub.subscribe(socket, channel, position)
            if options.presence:
                # Before the reply: a client may unsubscribe as soon as it has it.
                await self.presence.join(socket, channel, data.get("label"), data.get("meta"))
            await socket.reply(frame, reply)
            self.hub.go_live(socket, channel, last)
        if options.join_leave:
            await self.api.broker.publish_ephemeral(
                channel, protocol.push("ws:join", {"client_id": socket.client_id}, channel=channel)
            )
        await announce(self.bus, CHANNEL_SUBSCRIBED, socket=socket, channel=channel)
        return reply

    @staticmethod
    def _since(since: Any) -> tuple[int, str] | None:
        """The recovery position a subscribe asks for: ``{"offset", "epoch"}`` or nothing."""
        if since is None:
            return None
        offset, epoch = (
            (since.get("offset"), since.get("epoch")) if isinstance(since, dict) else (None, None)
        )
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or not 0 <= offset <= MAX_OFFSET
            or not isinstance(epoch, str)
        ):
            raise BadFrame("'since' must be {'offset': <int from 0 to 2**63 - 1>, 'epoch': <str>}")
        return offset, epoch

    async def _admit(
        self, socket: Socket, channel: str, data: dict[str, Any], options: ChannelOptions
    ) -> None:
        """Raise unless ``socket`` may subscribe to ``channel`` now."""
        await self._may_read(socket, channel, data, options)
        limit = self.config.max_subscriptions
        if (
            not self.hub.subscribed(socket, channel)
            and len(self.hub.subscriptions(socket)) >= limit
        ):
            raise RateLimited(f"at most {limit} subscriptions per socket")

    async def _may_read(
        self, socket: Socket, channel: str, data: dict[str, Any], options: ChannelOptions
    ) -> None:
        """Raise unless ``socket`` may read ``channel`` (subscribe to it, or page its history):
        the reserved channels' owner check, the subscribe policy, the namespace's
        ``authenticated``."""
        if channel.startswith("$"):
            self._check_reserved(socket, channel)
        elif not await allows(
            options.subscribe, socket, channel, data.get("query"), subscribed=False
        ):
            refuse(
                self.api.stats,
                "subscribe",
                "socket %s may not subscribe to %r",
                socket.id,
                channel,
            )
            raise Forbidden(f"you may not subscribe to {channel!r}")
        if options.authenticated and socket.stage != AUTHENTICATED:
            raise Unauthorized(f"authenticate before subscribing to {channel!r}")

    def _check_reserved(self, socket: Socket, channel: str) -> None:
        """``$user:`` and ``$session:`` channels belong to their own sockets only."""
        session = socket.session
        mine = {
            channel_of_user(session.user) if session.user is not None else None,
            channel_of_session(session.id) if session.id is not None else None,
        }
        if channel not in mine:
            refuse(self.api.stats, "reserved", "socket %s asked for %r", socket.id, channel)
            raise Forbidden(f"{channel!r} is reserved for its own user or session")

    async def join_reserved(self, socket: Socket) -> dict[str, Any]:
        """Subscribe a socket to its user's and session's reserved channels (those it has not
        joined yet); returns each new subscribe reply by kind (``user``, ``session``)."""
        joined: dict[str, Any] = {}
        names = []
        if socket.session.user is not None:
            names.append(("user", channel_of_user(socket.session.user)))
        if socket.session.id is not None:
            names.append(("session", channel_of_session(socket.session.id)))
        for kind, channel in names:
            if self.hub.subscribed(socket, channel):
                continue
            reply, last = await self.hub.subscribe(socket, channel)
            self.hub.go_live(socket, channel, last)
            joined[kind] = reply
        return joined

    # --- leaving ------------------------------------------------------------

    async def unsubscribe(self, socket: Socket, frame: Frame) -> Any:
        channel, _ = self._channel_of(frame)
        async with self._lock(socket):
            if await self.hub.unsubscribe(socket, channel):
                await self.left(socket, channel, closed=False)
        return {}

    async def revoke(self, socket: Socket, channel: str, reason: str) -> None:
        """Take ``channel`` away from ``socket``, which gets ``ws:revoked`` with ``reason``."""
        async with self._lock(socket):
            if await self.hub.unsubscribe(socket, channel):
                socket.send_nowait("ws:revoked", {"channel": channel, "reason": reason})
                await self.left(socket, channel, closed=False)

    async def left(self, socket: Socket, channel: str, *, closed: bool) -> None:
        """``socket`` is no longer subscribed to ``channel``; ``closed`` when it closed."""
        options = self._options(channel)
        if options.presence:
            await self.presence.leave(socket, channel, closed=closed)
        if options.join_leave:
            await self.api.broker.publish_ephemeral(
                channel, protocol.push("ws:leave", {"client_id": socket.client_id}, channel=channel)
            )
        await announce(self.bus, CHANNEL_UNSUBSCRIBED, socket=socket, channel=channel)

    # --- the rest -----------------------------------------------------------

    async def publish(self, socket: Socket, frame: Frame) -> Any:
        channel, data = self._channel_of(frame)
        event = data.get("event")
        if not isinstance(event, str) or not 1 <= len(event) <= protocol.MAX_EVENT_LENGTH:
            raise BadFrame(
                f"'event' must be a string of 1 to {protocol.MAX_EVENT_LENGTH} characters"
            )
        if event.startswith(RESERVED_PREFIXES):
            raise Forbidden(f"sockets may not publish {event!r}")
        if channel.startswith("$"):
            raise Forbidden("reserved channels are published to by the server only")
        exclude_sender = data.get("exclude_sender", False)
        if not isinstance(exclude_sender, bool):
            raise BadFrame("'exclude_sender' must be true or false")
        key = data.get("idempotency_key")
        if key is not None:
            problem = protocol.check_idempotency_key(key)
            if problem is not None:
                raise BadFrame(problem)
        options = self._options(channel)
        subscribed = self.hub.subscribed(socket, channel)
        if not await allows(
            options.publish, socket, channel, data.get("data"), subscribed=subscribed
        ):
            raise Forbidden(f"you may not publish to {channel!r}")
        # By client id, as the server API does: the sender's other sockets (a resumed
        # reconnect) and its recovery from history leave the publication out too.
        exclude = socket.client_id if exclude_sender else None
        offset, epoch = await self.api.publish_position(
            channel, event, data.get("data"), exclude=exclude, idempotency_key=key
        )
        return {"offset": offset, "epoch": epoch}

    async def presence_list(self, socket: Socket, frame: Frame) -> Any:
        channel, data = self._channel_of(frame)
        options = self._options(channel)
        if not options.presence:
            raise NotFound(f"{channel!r} keeps no presence (its namespace has presence off)")
        if not self.hub.subscribed(socket, channel) and not await allows(
            options.subscribe, socket, channel, data.get("query"), subscribed=False
        ):
            raise Forbidden(f"you may not see who is in {channel!r}")
        limit, cursor = data.get("limit", 100), data.get("cursor")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise BadFrame("'limit' must be an integer from 1 to 1000")
        if cursor is not None and not isinstance(cursor, str):
            raise BadFrame("'cursor' must be the string a previous reply gave")
        return await self.presence.members(channel, limit, cursor)

    async def history(self, socket: Socket, frame: Frame) -> Any:
        """A page of the channel's history, for a socket that may subscribe to it (the same
        checks as ``ws:subscribe``, but no subscription); see
        :mod:`monument_ws.channels.history`."""
        channel, data = self._channel_of(frame)
        before, after, epoch = data.get("before"), data.get("after"), data.get("epoch")
        limit = data.get("limit", DEFAULT_LIMIT)
        problem = check_page(before, after, limit, epoch)
        if problem is not None:
            raise BadFrame(problem)
        if not self.hub.subscribed(socket, channel):
            await self._may_read(socket, channel, data, self._options(channel))
        return await self.api.history_pages.page(
            channel, before=before, after=after, limit=limit, epoch=epoch, reader=socket.client_id
        )

    async def heartbeat(self, socket: Socket, frame: Frame) -> Any:
        data = frame.data
        channels = data.get("channels") if isinstance(data, dict) else None
        if channels is not None and not (
            isinstance(channels, list) and all(isinstance(c, str) for c in channels)
        ):
            raise BadFrame("'channels' must be a list of channel names")
        await self.presence.heartbeat(socket, channels)
        return {}

    async def enqueue(self, socket: Socket, frame: Frame) -> Any:
        return {"seq": await self.api.queues.put(socket.client_id, frame.data)}
