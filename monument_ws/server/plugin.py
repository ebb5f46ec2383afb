"""The plugin instance of one application (what ``monument_ws.setup(app)`` returns).

On shutdown the sockets are drained: closed with 1001 in batches over ``drain_period``, so
clients reconnect (with jitter) elsewhere at an even rate; then the broker stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from .. import brokers, protocol
from .._version import __version__
from ..brokers.base import Broker
from ..bus import EventBus
from ..channels.hub import Hub
from ..channels.kick import Kick
from ..channels.namespaces import Namespaces, allows
from ..channels.peer_queues import QUEUE_EVENT, QUEUED_PARAM, PeerQueues
from ..channels.presence import Presence
from ..config import Config
from ..connection import reader as aiohttp_reader
from ..connection.auth import (
    AUTHENTICATED,
    Authenticator,
    ResumeTokens,
    Session,
    SessionParser,
    channel_of_session,
    channel_of_user,
    client_ip,
)
from ..connection.commands import Commands, RequestCommand
from ..connection.dispatch import Dispatcher
from ..connection.limits import TokenBucket
from ..connection.middleware import Middleware
from ..connection.router import H, Router
from ..connection.socket import INLINE_COMMANDS, Socket
from ..connection.stats import Stats
from ..protocol.errors import (
    BadFrame,
    Forbidden,
    MonumentWSError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unavailable,
)
from ..protocol.frames import CloseCode, Frame
from ..signals import (
    CHANNEL_SUBSCRIBED,
    CHANNEL_UNSUBSCRIBED,
    RESERVED_PREFIXES,
    SOCKET_CLOSED,
    SOCKET_CONNECTED,
)
from . import logs
from .plugs import Plugs

log = logging.getLogger("monument_ws")


class MonumentWS:
    """The plugin instance of one application: config, bus, handlers, channels and live sockets."""

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        broker: Broker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.bus = bus
        self.router = Router(config.websocket, config.socket_events)
        self.broker = (
            broker
            if broker is not None
            else brokers.from_url(config.broker, prefix=config.broker_prefix)
        )
        #: frame hooks and raw listeners: ``@ws.middleware.incoming`` / ``.outgoing`` / ``.listen``
        self.middleware = Middleware()
        self.hub = Hub(self.broker, self.middleware)
        #: the peer queues of every client (see :mod:`monument_ws.channels.peer_queues`)
        self.queues = PeerQueues(self.broker, config.queue_size, config.queue_ttl)
        self.hub.queues = self.queues
        self.namespaces = Namespaces(config.channels)
        self.presence = Presence(self.broker, bus, config, clock)
        self._locks: weakref.WeakKeyDictionary[Socket, asyncio.Lock] = weakref.WeakKeyDictionary()
        self.clock = clock
        #: ``async def parse(request) -> Session`` run at every upgrade; see :meth:`session_parser`.
        self.session_parser: SessionParser | None = None
        #: ``async def authenticate(socket, stage, data) -> AuthStep`` answering ws:auth.
        self.authenticator: Authenticator | None = None
        self._per_ip: dict[str, int] = {}
        self._per_user: dict[str, int] = {}
        self._upgrades: dict[str, TokenBucket] = {}
        self.stats = Stats()
        #: The plugs folder (None when ``plugs`` is empty or sockets are off).
        self.plugs = (
            Plugs(Path(config.plugs).absolute(), self.router, bus, reload=config.reload)
            if config.plugs and config.websocket is not False
            else None
        )
        #: True once a graceful shutdown began: upgrades are refused, readiness fails.
        self.draining = False
        #: The application's own Prometheus registry (with ``metrics`` on), never the global one.
        self.metrics_registry: Any = None
        self.tokens = ResumeTokens(config.secret, config.resume_ttl)
        requests: dict[str, RequestCommand] = {
            "ws:subscribe": self._subscribe_command,
            "ws:unsubscribe": self._unsubscribe_command,
            "ws:publish": self._publish_command,
            "ws:presence": self._presence_command,
            "ws:heartbeat": self._heartbeat_command,
            "ws:auth": self._auth_command,
            QUEUE_EVENT: self._enqueue_command,
        }
        #: every ``ws:`` command: the socket's own (inline) and the server's (requests)
        self.commands = Commands(INLINE_COMMANDS, requests)
        self.dispatcher = Dispatcher(
            config, bus, self.router, self.stats, self.commands, self.middleware, self._fanout
        )

    # --- server API ---------------------------------------------------------

    async def publish(self, channel: str, event: str, data: Any = None) -> int:
        """Publish to ``channel`` on every process; returns the publication's offset.

        Subscribers get ``{"event", "channel", "data", "offset"}``, kept in the
        channel's history as its namespace says. Raises ValueError for a bad
        channel name and TypeError for data JSON cannot hold.
        """
        problem = protocol.check_channel(channel)
        if problem is not None:
            raise ValueError(problem)
        options = self.namespaces.options(channel)
        started = time.perf_counter()
        try:
            offset, _ = await self.broker.publish(
                channel,
                event,
                data,
                history_size=options.history_size,
                history_ttl=options.history_ttl,
            )
        except MonumentWSError:
            self.stats.publish_errors += 1
            raise
        self.stats.publish_latency.observe(time.perf_counter() - started)
        return offset

    async def broadcast(self, event: str, data: Any = None) -> None:
        """Push to every socket on every process: at most once, not recoverable."""
        await self.broker.broadcast(protocol.push(event, data))

    async def _fanout(self, event: str, data: Any, channel: str | None) -> None:
        """A handler's BROADCAST yield: every socket, or a channel publication."""
        if channel is None:
            await self.broadcast(event, data)
        else:
            await self.publish(channel, event, data)

    async def send_to(self, client_id: str, event: str, data: Any = None) -> bool:
        """Push to every socket of ``client_id``, on whichever process holds it.

        At most once, not recoverable; False when no process holds the client.
        """
        return await self.broker.send_to_client(client_id, protocol.push(event, data))

    async def enqueue(self, client_id: str, data: Any = None) -> int:
        """Queue ``data`` for ``client_id`` on whichever process holds it, or for when it
        comes back (kept ``queue_ttl`` seconds); the client takes it with ``consume()``.
        Returns its seq. See :mod:`monument_ws.channels.peer_queues`."""
        return await self.queues.enqueue(client_id, data)

    async def _enqueue_command(self, socket: Socket, frame: Frame) -> Any:
        return {"seq": await self.queues.put(socket.client_id, frame.data)}

    async def kick(
        self,
        *,
        client_id: str | None = None,
        user: str | None = None,
        session: str | None = None,
        reason: str = "kicked",
    ) -> None:
        """Close every socket of one client id, user or session, on every process, with 4409.

        The client receives ``reason`` (cut to 123 bytes) in the close frame and
        does not reconnect. Exactly one of ``client_id``, ``user`` and
        ``session`` (ValueError otherwise). Sent through the broker: at most
        once, not stored (see :mod:`monument_ws.channels.kick`).
        """
        await self.broker.control(
            Kick.of(client_id=client_id, user=user, session=session, reason=reason).encode()
        )

    # --- ws: commands -------------------------------------------------------

    def _channel_lock(self, socket: Socket) -> asyncio.Lock:
        """One socket's subscribe/unsubscribe commands run one at a time, in arrival order."""
        lock = self._locks.get(socket)
        if lock is None:
            lock = self._locks[socket] = asyncio.Lock()
        return lock

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

    async def _subscribe_command(self, socket: Socket, frame: Frame) -> Any:
        channel, data = self._channel_of(frame)
        since = data.get("since")
        position: tuple[int, str] | None = None
        if since is not None:
            offset, epoch = (
                (since.get("offset"), since.get("epoch"))
                if isinstance(since, dict)
                else (None, None)
            )
            if (
                isinstance(offset, bool)
                or not isinstance(offset, int)
                or offset < 0
                or not isinstance(epoch, str)
            ):
                raise BadFrame("'since' must be {'offset': <int >= 0>, 'epoch': <str>}")
            position = (offset, epoch)
        options = self.namespaces.options(channel)
        if channel.startswith("$"):
            self._check_reserved(socket, channel)
        elif not await allows(
            options.subscribe, socket, channel, data.get("query"), subscribed=False
        ):
            self._refuse("subscribe", "socket %s may not subscribe to %r", socket.id, channel)
            raise Forbidden(f"you may not subscribe to {channel!r}")
        if options.authenticated and socket.stage != AUTHENTICATED:
            raise Unauthorized(f"authenticate before subscribing to {channel!r}")
        if (
            not self.hub.subscribed(socket, channel)
            and len(self.hub.subscriptions(socket)) >= self.config.max_subscriptions
        ):
            raise RateLimited(f"at most {self.config.max_subscriptions} subscriptions per socket")
        async with self._channel_lock(socket):
            if self.hub.subscribed(socket, channel):
                await self.hub.unsubscribe(socket, channel)
            reply, last = await self.hub.subscribe(socket, channel, position)
            if options.presence:
                # Before the reply: a client may unsubscribe as soon as it has it.
                await self.presence.join(socket, channel, data.get("label"), data.get("meta"))
            await socket.reply(frame, reply)
            self.hub.go_live(socket, channel, last)
        if options.join_leave:
            await self.broker.publish_ephemeral(
                channel, protocol.push("ws:join", {"client_id": socket.client_id}, channel=channel)
            )
        await self._announce(CHANNEL_SUBSCRIBED, socket=socket, channel=channel)
        return reply

    def _check_reserved(self, socket: Socket, channel: str) -> None:
        """``$user:`` and ``$session:`` channels belong to their own sockets only."""
        session = socket.session
        mine = {
            channel_of_user(session.user) if session.user is not None else None,
            channel_of_session(session.id) if session.id is not None else None,
        }
        if channel not in mine:
            self._refuse("reserved", "socket %s asked for %r", socket.id, channel)
            raise Forbidden(f"{channel!r} is reserved for its own user or session")

    async def _unsubscribe_command(self, socket: Socket, frame: Frame) -> Any:
        channel, _ = self._channel_of(frame)
        async with self._channel_lock(socket):
            if await self.hub.unsubscribe(socket, channel):
                await self._left(socket, channel, closed=False)
        return {}

    async def _presence_command(self, socket: Socket, frame: Frame) -> Any:
        channel, data = self._channel_of(frame)
        options = self.namespaces.options(channel)
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

    async def _heartbeat_command(self, socket: Socket, frame: Frame) -> Any:
        data = frame.data
        channels = data.get("channels") if isinstance(data, dict) else None
        if channels is not None and not (
            isinstance(channels, list) and all(isinstance(c, str) for c in channels)
        ):
            raise BadFrame("'channels' must be a list of channel names")
        await self.presence.heartbeat(socket, channels)
        return {}

    async def knock(self, channel: str) -> None:
        """Ask every member of ``channel`` to heartbeat now (smartersockets' knock).

        Subscribers get ``{"event": "ws:knock", "channel": ...}`` and answer with
        ``ws:heartbeat`` naming the channel (the Python client does it by itself).
        """
        await self.broker.publish_ephemeral(
            channel, protocol.push("ws:knock", {"channel": channel}, channel=channel)
        )

    async def _publish_command(self, socket: Socket, frame: Frame) -> Any:
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
        options = self.namespaces.options(channel)
        subscribed = self.hub.subscribed(socket, channel)
        if not await allows(
            options.publish, socket, channel, data.get("data"), subscribed=subscribed
        ):
            raise Forbidden(f"you may not publish to {channel!r}")
        return {"offset": await self.publish(channel, event, data.get("data"))}

    async def _left(self, socket: Socket, channel: str, *, closed: bool) -> None:
        if self.namespaces.options(channel).presence:
            await self.presence.leave(socket, channel, closed=closed)
        if self.namespaces.options(channel).join_leave:
            await self.broker.publish_ephemeral(
                channel, protocol.push("ws:leave", {"client_id": socket.client_id}, channel=channel)
            )
        await self._announce(CHANNEL_UNSUBSCRIBED, socket=socket, channel=channel)

    # --- sockets ------------------------------------------------------------

    def handler(self, event: str) -> Callable[[H], H]:
        """Register ``handler(message, socket)`` for ``event``: ``@ws.handler("echo")``."""
        return self.router.handler(event)

    def _refuse(self, reason: str, detail: str, *args: Any) -> None:
        """Every refusal is counted by reason and logged once."""
        self.stats.refused[reason] += 1
        log.warning("refused (%s): " + detail, reason, *args)

    async def handle_upgrade(self, request: web.Request) -> web.StreamResponse:
        """The socket route: the upgrade checks, the session parser, then serve until closed.

        Order: Origin (HTTP 403), upgrades per second per address and sockets per
        address (HTTP 503 with Retry-After) -- all before any socket exists; then
        the WebSocket is accepted and the session parser runs: a refusal closes
        it at once with 4401 and the reason (browsers cannot read an HTTP 401
        on an upgrade); too many sockets for the user closes with 4029.
        """
        cfg = self.config
        if self.draining:
            # aiohttp closed the listener already; this catches upgrades on kept-alive connections.
            raise web.HTTPServiceUnavailable(
                text="this server is shutting down", headers={"Retry-After": "1"}
            )
        ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), cfg.trusted_proxies)
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, request.host, cfg.allowed_origins):
            self._refuse("origin", "Origin %r on host %r", origin, request.host)
            raise web.HTTPForbidden(text="this Origin may not open a socket here")
        if cfg.upgrade_rate and not self._upgrade_bucket(ip).take():
            self._refuse("upgrade_rate", "more than %g upgrades/s from %s", cfg.upgrade_rate, ip)
            raise web.HTTPServiceUnavailable(
                text="too many connection attempts", headers={"Retry-After": "5"}
            )
        if self._per_ip.get(ip, 0) >= cfg.max_sockets_per_ip:
            self._refuse("sockets_per_ip", "%s already has %d sockets", ip, cfg.max_sockets_per_ip)
            raise web.HTTPServiceUnavailable(
                text="too many sockets from this address", headers={"Retry-After": "30"}
            )
        ws = aiohttp_reader.response(
            protocols=(protocol.SUBPROTOCOL,),
            compress=cfg.compression,
            max_msg_size=cfg.max_message_size,
            heartbeat=cfg.heartbeat or None,
            decode_text=False,
        )
        await ws.prepare(request)
        session = await self._parse_session(request, ws)
        if session is None:
            return ws
        if (
            session.user is not None
            and self._per_user.get(session.user, 0) >= cfg.max_sockets_per_user
        ):
            self._refuse(
                "sockets_per_user",
                "user %r already has %d sockets",
                session.user,
                cfg.max_sockets_per_user,
            )
            await ws.close(code=CloseCode.RATE_LIMITED, message=b"too many sockets for this user")
            return ws
        resumed_id = self.tokens.verify(request.query.get("resume"))
        client_id, resume = self.tokens.issue(resumed_id)
        socket = Socket(
            ws,
            request,
            client_id=client_id,
            resumed=resumed_id is not None,
            dispatch=self.dispatcher,
            ip=ip,
            queues=self.queues,
        )
        logs.bind(socket.id, client_id)
        self._set_session(socket, session)
        self.stats.connections += 1
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        user = session.user
        if user is not None:
            self._per_user[user] = self._per_user.get(user, 0) + 1
        # Only sockets with a deadline get a watcher task (an idle socket costs less).
        watcher = (
            asyncio.get_running_loop().create_task(self._watch(socket))
            if cfg.require_auth or socket.session.expires_at is not None
            else None
        )
        await self.hub.add(socket)
        try:
            reserved = await self._join_reserved(socket)
            socket.send_raw_nowait(
                protocol.push(
                    protocol.WELCOME_EVENT,
                    {
                        "client_id": client_id,
                        "resume": resume,
                        "resumed": socket.resumed,
                        "protocol": protocol.PROTOCOL_VERSION,
                        "heartbeat": cfg.heartbeat,
                        "max_message_size": cfg.max_message_size,
                        "stage": socket.stage,
                        "channels": reserved,
                        "server": f"monument_ws/{__version__}",
                    },
                )
            )
            if socket.resumed:
                await self._resume_queue(socket, request.query.get(QUEUED_PARAM))
            await self._announce(SOCKET_CONNECTED, socket=socket)
            await socket.serve()
        finally:
            if watcher is not None:
                watcher.cancel()
            for channel in await self.hub.remove(socket):
                await self._left(socket, channel, closed=True)
            self._release(self._per_ip, ip)
            if user is not None:
                self._release(self._per_user, user)
            await self._announce(SOCKET_CLOSED, socket=socket, code=ws.close_code)
        return ws

    async def _resume_queue(self, socket: Socket, had: str | None) -> None:
        """Push the queued messages a resumed client has not got (``queued=`` says what it has)."""
        try:
            seq = int(had) if had is not None and had.isdigit() else 0
            await self.queues.resume(socket, seq)
        except Unavailable as exc:
            log.warning("queued messages of %s wait: %s", socket.client_id, exc)

    @staticmethod
    def _release(counts: dict[str, int], key: str) -> None:
        counts[key] -= 1
        if not counts[key]:
            del counts[key]

    def _upgrade_bucket(self, ip: str) -> TokenBucket:
        bucket = self._upgrades.get(ip)
        if bucket is None:
            if len(self._upgrades) > 10_000:  # forget idle addresses, keep memory bounded
                for key in [k for k, b in self._upgrades.items() if b.full]:
                    del self._upgrades[key]
            rate = self.config.upgrade_rate
            bucket = self._upgrades[ip] = TokenBucket(rate, max(rate * 5, 1), time.monotonic)
        return bucket

    async def _parse_session(
        self, request: web.Request, ws: web.WebSocketResponse
    ) -> Session | None:
        """Run the session parser; on refusal close with 4401 and the reason, return None."""
        if self.session_parser is None:
            return Session()
        try:
            session = await self.session_parser(request)
            if session is None:
                raise Unauthorized("the session parser refused the connection")
        except Unauthorized as exc:
            self._refuse("session", "%s", exc.message)
            await ws.close(code=CloseCode.UNAUTHORIZED, message=exc.message.encode()[:123])
            return None
        except Exception:
            log.exception("the session parser failed")
            self.stats.refused["session_error"] += 1
            await ws.close(code=CloseCode.INTERNAL, message=b"internal error")
            return None
        return session

    def _set_session(self, socket: Socket, session: Session) -> None:
        socket.session = session
        if session.user is not None or session.id is not None:
            socket.stage = AUTHENTICATED
        if session.user is not None:
            socket.state["user"] = session.user

    async def _join_reserved(self, socket: Socket) -> dict[str, Any]:
        """Subscribe a socket to its user's and session's reserved channels."""
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

    async def _watch(self, socket: Socket) -> None:
        """Close a socket whose credentials expire unrefreshed, or that does not authenticate in time."""
        cfg = self.config
        if cfg.require_auth and socket.stage != AUTHENTICATED:
            await asyncio.sleep(cfg.auth_timeout)
            if socket.stage != AUTHENTICATED:
                self._refuse(
                    "auth_timeout",
                    "socket %s did not authenticate in %g s",
                    socket.id,
                    cfg.auth_timeout,
                )
                await socket.close(CloseCode.POLICY, "authentication timed out")
                return
        while socket.session.expires_at is not None:
            remaining = socket.session.expires_at - self.clock()
            if remaining <= 0:
                self._refuse("expired", "credentials of socket %s expired", socket.id)
                await socket.close(CloseCode.UNAUTHORIZED, "credentials expired")
                return
            await asyncio.sleep(min(remaining, 3600))

    async def _auth_command(self, socket: Socket, frame: Frame) -> Any:
        data = frame.data
        stage = data.get("stage") if isinstance(data, dict) else None
        if not isinstance(stage, str) or not stage:
            raise BadFrame("ws:auth needs data {'stage': <str>, ...}")
        if self.authenticator is None:
            raise NotFound("this server has no ws:auth stages")
        try:
            step = await self.authenticator(socket, stage, data)
        except Unauthorized as exc:
            self._refuse("auth", "stage %r of socket %s: %s", stage, socket.id, exc.message)
            raise
        socket.stage = step.stage
        if step.session is not None:
            socket.session = step.session
            if step.session.user is not None:
                socket.state["user"] = step.session.user
            await self._join_reserved(socket)
        return {"stage": socket.stage, "data": step.reply}

    async def publish_to_user(self, user: str, event: str, data: Any = None) -> int:
        """Publish to every socket of ``user`` on every process (recoverable like any channel)."""
        return await self.publish(channel_of_user(user), event, data)

    async def publish_to_session(self, session: str, event: str, data: Any = None) -> int:
        """Publish to every socket of a session (its channel is named from a hash of the id)."""
        return await self.publish(channel_of_session(session), event, data)

    async def revoke(
        self, socket: Socket, channel: str | None = None, reason: str = "revoked"
    ) -> None:
        """Take a channel away from ``socket`` (it gets ``ws:revoked``), or, without a channel,
        end its credentials: it is closed with 4401 and ``reason``."""
        if channel is None:
            await socket.close(CloseCode.UNAUTHORIZED, reason)
            return
        async with self._channel_lock(socket):
            if await self.hub.unsubscribe(socket, channel):
                socket.send_nowait("ws:revoked", {"channel": channel, "reason": reason})
                await self._left(socket, channel, closed=False)

    async def _announce(self, event: str, **kwargs: Any) -> None:
        try:
            await self.bus.emit(event, **kwargs)
        except Exception:
            log.exception("a receiver of %s failed", event)

    async def on_shutdown(self, app: web.Application) -> None:
        """Graceful shutdown: refuse upgrades, then close every socket with 1001 in batches
        over ``drain_period`` (see :meth:`Hub.drain`). The broker stops afterwards, in
        :meth:`lifespan`, so the last answers and publishes still go through."""
        self.draining = True
        cfg = self.config
        self.stats.drained += await self.hub.drain(
            cfg.drain_period, cfg.drain_batch, cfg.drain_grace
        )

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: start the broker (then the plugs folder) with the app, stop them after
        the sockets closed."""
        await self.broker.start()
        self.presence.start()
        if self.plugs is not None:
            try:
                await self.plugs.start(app)
            except BaseException:  # INIT failed: the app does not start, leave nothing running
                await self.presence.stop()
                await self.broker.stop()
                raise
        yield
        if self.plugs is not None:
            await self.plugs.stop(app)
        await self.presence.stop()
        await self.broker.stop()


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a browser at ``origin`` may open a socket on ``host`` (the Host header).

    Same host, or an entry of ``allowed`` (exact ``scheme://host[:port]``, or ``*``).
    """
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
