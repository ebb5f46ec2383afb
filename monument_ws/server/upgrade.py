"""The socket route: the checks an upgrade must pass, then the socket's life until it closes.

Order of the checks, all before any socket exists: shutting down (HTTP 503), Origin (HTTP 403),
upgrades per second per address and open sockets per address (HTTP 503 with Retry-After). Then
the WebSocket is accepted and the session parser runs (a refusal closes it with 4401, see
:mod:`monument_ws.server.credentials`), then sockets per user (closed with 4029).

An admitted socket gets its client id (a valid ``resume`` token keeps the old one), joins its
reserved channels, is sent ``ws:welcome``, gets the queued messages it has not got (when
resumed), and ``SOCKET_CONNECTED`` is emitted; then it is served until it closes. However it
closes, its credential watcher stops, each of its channels is left (presence disconnected,
``ws:leave``, ``CHANNEL_UNSUBSCRIBED``), the address and user counts drop, and
``SOCKET_CLOSED`` is emitted last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web

from .. import protocol
from .._version import __version__
from ..bus import EventBus
from ..channels.hub import Hub
from ..channels.peer_queues import QUEUED_PARAM, PeerQueues
from ..config import Config
from ..connection import reader as aiohttp_reader
from ..connection.auth import ResumeTokens, Session, client_ip
from ..connection.dispatch import Dispatcher
from ..connection.inbound import Inbound
from ..connection.limits import TokenBucket
from ..connection.socket import Socket
from ..connection.stats import Stats
from ..protocol.codecs import Codec
from ..protocol.errors import Unavailable
from ..protocol.frames import CloseCode, truncate
from ..signals import SOCKET_CLOSED, SOCKET_CONNECTED, announce
from . import logs
from .channel_commands import ChannelCommands
from .credentials import Credentials
from .refusals import refuse

log = logging.getLogger("monument_ws")

#: Addresses whose upgrade rate is tracked before idle ones are forgotten (bounds memory).
TRACKED_ADDRESSES = 10_000


class UpgradeGate:
    """Admits sockets to one plugin instance and serves each until it closes."""

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        hub: Hub,
        queues: PeerQueues,
        dispatcher: Dispatcher,
        tokens: ResumeTokens,
        stats: Stats,
        credentials: Credentials,
        channel_commands: ChannelCommands,
    ) -> None:
        self.config = config
        self.bus = bus
        self.hub = hub
        self.queues = queues
        self.dispatcher = dispatcher
        self.stats = stats
        self.credentials = credentials
        self.channel_commands = channel_commands
        self.tokens = tokens
        #: True once a graceful shutdown began (:meth:`close`): every upgrade is refused.
        self.draining = False
        self._per_ip: dict[str, int] = {}
        self._per_user: dict[str, int] = {}
        self._upgrades: dict[str, TokenBucket] = {}
        self._told_mismatch = False

    def endpoint(self, codec: Codec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """The handler of an endpoint whose sockets speak ``codec``'s wire format: everything
        else -- checks, session, limits, handlers, channels -- is the main route's."""

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self.handle(request, codec)

        return handle

    async def handle(self, request: web.Request, codec: Codec | None = None) -> web.StreamResponse:
        """The socket route's handler: check, accept, admit, then serve until closed. ``codec``
        is the endpoint's wire format; None: the native protocol (the main route).

        This coroutine lives as long as the socket, and so does every frame of the ``await``
        chain under it (some 300 bytes each): the steps before the socket exists run in
        :meth:`_accept`, which has returned by then, and the reader is awaited directly.
        """
        ip = self._check(request)
        ws = aiohttp_reader.response(
            protocols=(protocol.SUBPROTOCOL,) if codec is None else codec.subprotocols,
            # a codec's frames are written as its format made them, never deflated
            compress=self.config.compression and codec is None,
            max_msg_size=self.config.max_message_size,
            heartbeat=self.config.heartbeat or None,
            decode_text=False,
        )
        accepted = await self._accept(request, ws, ip, codec)
        if accepted is None:
            return ws
        socket, resume = accepted
        user = socket.session.user  # counted under this user, whatever ws:auth does later
        self.stats.connections += 1
        _hold(self._per_ip, ip)
        if user is not None:
            _hold(self._per_user, user)
        self.credentials.watch(socket)
        await self.hub.add(socket)
        beats = self._heartbeats(socket, codec)
        try:
            socket.send_raw_nowait(
                self._welcome(socket, resume, await self.channel_commands.join_reserved(socket))
            )
            if socket.resumed:
                await self._resume_queue(socket, request.query.get(QUEUED_PARAM))
            await announce(self.bus, SOCKET_CONNECTED, socket=socket)
            await Inbound(socket, ws, self.dispatcher).serve()
        finally:
            if beats is not None:
                beats.cancel()
            self.credentials.forget(socket)
            if self.dispatcher.live is not None:
                self.dispatcher.live.forget(socket)
            for channel in await self.hub.remove(socket):
                await self.channel_commands.left(socket, channel, closed=True)
            _release(self._per_ip, ip)
            if user is not None:
                _release(self._per_user, user)
            await announce(self.bus, SOCKET_CLOSED, socket=socket, code=socket.close_code)
        return ws

    def _heartbeats(self, socket: Socket, codec: Codec | None) -> asyncio.Task[None] | None:
        """For a format with a heartbeat frame of its own (:attr:`Codec.heartbeat`): the task
        writing it to ``socket`` each ``heartbeat`` seconds until the socket ends; else None."""
        period = self.config.heartbeat
        if codec is None or not codec.heartbeat or not period:
            return None
        wire = codec.heartbeat

        async def beat() -> None:
            while not socket.closed:
                await asyncio.sleep(period)
                socket.outbound.sender.offer(b"", wire)

        return asyncio.get_running_loop().create_task(beat())

    async def _accept(
        self, request: web.Request, ws: web.WebSocketResponse, ip: str, codec: Codec | None
    ) -> tuple[Socket, str] | None:
        """Accept the upgrade and make the socket with its session and its resume secret; None
        when the session parser or the user's socket count refused it (``ws`` closed)."""
        await ws.prepare(request)
        if (
            codec is None
            and ws.ws_protocol is None
            and request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL)
        ):
            await self._refuse_version(request, ws)
            return None
        session = await self.credentials.parse(request, ws)
        if session is None or not await self._user_has_room(session, ws):
            return None
        resumed_id = self.tokens.verify(request.query.get("resume"))
        if resumed_id is None and self.tokens.mismatches and not self._told_mismatch:
            self._mismatched()
        client_id, resume = self.tokens.issue(resumed_id)
        socket = Socket(
            ws,
            request,
            client_id=client_id,
            resumed=resumed_id is not None,
            dispatch=self.dispatcher,
            ip=ip,
            queues=self.queues,
            codec=codec.session() if codec is not None else None,
        )
        logs.bind(socket.id, client_id)
        self.credentials.admit(socket, session)
        return socket, resume

    def _mismatched(self) -> None:
        """The first resume secret signed with another key: warn once (not once per socket).

        With a shared broker this is almost always processes with different ``secret``
        settings (or none), each of which gives the other's clients new ids."""
        self._told_mismatch = True
        if self.config.broker.startswith("memory"):
            return  # one process: a restart without a fixed secret, nothing to share
        log.warning(
            "a client's resume token did not verify (it was signed with another key), so it got "
            "a new client id: processes sharing a broker must share `secret` "
            "(--secret, MONUMENT_WS_SECRET); further mismatches are not logged"
        )

    def close(self) -> None:
        """A graceful shutdown began: refuse every upgrade from now on (503, Retry-After: 1)."""
        self.draining = True

    # --- before the socket exists -----------------------------------------------

    def _check(self, request: web.Request) -> str:
        """Raise the HTTP refusal of an upgrade that may not proceed; return the client address."""
        cfg = self.config
        if self.draining:
            # aiohttp closed the listener already; this catches upgrades on kept-alive connections.
            raise web.HTTPServiceUnavailable(
                text="this server is shutting down", headers={"Retry-After": "1"}
            )
        ip = client_ip(request.remote, request.headers.get("X-Forwarded-For"), cfg.trusted_proxies)
        origin = request.headers.get("Origin")
        if origin is not None and not origin_allowed(origin, request.host, cfg.allowed_origins):
            refuse(self.stats, "origin", "Origin %r on host %r", origin, request.host)
            raise web.HTTPForbidden(text="this Origin may not open a socket here")
        if cfg.upgrade_rate and not self._upgrade_bucket(ip).take():
            refuse(
                self.stats, "upgrade_rate", "more than %g upgrades/s from %s", cfg.upgrade_rate, ip
            )
            raise web.HTTPServiceUnavailable(
                text="too many connection attempts", headers={"Retry-After": "5"}
            )
        if self._per_ip.get(ip, 0) >= cfg.max_sockets_per_ip:
            refuse(
                self.stats,
                "sockets_per_ip",
                "%s already has %d sockets",
                ip,
                cfg.max_sockets_per_ip,
            )
            raise web.HTTPServiceUnavailable(
                text="too many sockets from this address", headers={"Retry-After": "30"}
            )
        return ip

    def _upgrade_bucket(self, ip: str) -> TokenBucket:
        bucket = self._upgrades.get(ip)
        if bucket is None:
            if len(self._upgrades) > TRACKED_ADDRESSES:
                for key in [k for k, b in self._upgrades.items() if b.full]:
                    del self._upgrades[key]
            rate = self.config.upgrade_rate
            bucket = self._upgrades[ip] = TokenBucket(rate, max(rate * 5, 1), time.monotonic)
        return bucket

    async def _refuse_version(self, request: web.Request, ws: web.WebSocketResponse) -> None:
        """The client offered subprotocols, none of them ours (e.g. only ``monument.v2``): it
        expects another version, so it is told which one this server speaks and closed with 1002
        rather than served as version 1. Offering none at all means version 1."""
        offered = request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL, "")
        refuse(self.stats, "protocol_version", "the client offered %r", offered[:100])
        reason = f"this server speaks {protocol.SUBPROTOCOL} only; offered: {offered}"
        await ws.close(code=CloseCode.PROTOCOL_ERROR, message=truncate(reason).encode())

    async def _user_has_room(self, session: Session, ws: web.WebSocketResponse) -> bool:
        """False (and ``ws`` closed with 4029) when the user has all the sockets it may have."""
        limit = self.config.max_sockets_per_user
        if session.user is None or self._per_user.get(session.user, 0) < limit:
            return True
        refuse(
            self.stats, "sockets_per_user", "user %r already has %d sockets", session.user, limit
        )
        await ws.close(code=CloseCode.RATE_LIMITED, message=b"too many sockets for this user")
        return False

    # --- the socket's life ------------------------------------------------------

    def _welcome(self, socket: Socket, resume: str, reserved: dict[str, Any]) -> bytes:
        cfg = self.config
        return protocol.push(
            protocol.WELCOME_EVENT,
            {
                "client_id": socket.client_id,
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

    async def _resume_queue(self, socket: Socket, had: str | None) -> None:
        """Push the queued messages a resumed client has not got (``queued=`` says what it has)."""
        try:
            seq = int(had) if had is not None and had.isdigit() else 0
            await self.queues.resume(socket, seq)
        except Unavailable as exc:
            log.warning("queued messages of %s wait: %s", socket.client_id, exc)


def _hold(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _release(counts: dict[str, int], key: str) -> None:
    counts[key] -= 1
    if not counts[key]:
        del counts[key]


def origin_allowed(origin: str, host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a browser at ``origin`` may open a socket on ``host`` (the Host header).

    Same host, or an entry of ``allowed`` (exact ``scheme://host[:port]``, or ``*``).
    """
    if "*" in allowed or origin in allowed:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()
