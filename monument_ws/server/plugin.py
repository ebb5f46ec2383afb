"""The plugin instance of one application (what ``monument_ws.setup(app)`` returns).

:class:`MonumentWS` is a facade: it builds the parts and runs their lifecycle. Each part has its
own module:

* the server API -- ``publish``, ``broadcast``, ``send_to``, ``enqueue``, ``kick`` … -- in
  :mod:`monument_ws.server.api` (shared with :class:`~monument_ws.server.publisher.Publisher`);
* the ``ws:`` channel commands in :mod:`monument_ws.server.channel_commands`;
* sessions, ``ws:auth`` and the credential watcher in :mod:`monument_ws.server.credentials`;
* the upgrade checks and each socket's life in :mod:`monument_ws.server.upgrade`;
* the browser client's files in :mod:`monument_ws.server.static`.

On shutdown the sockets are drained: closed with 1001 in batches over ``drain_period``, so
clients reconnect (with jitter) elsewhere at an even rate; then the plugs folder, presence and
the broker stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .. import brokers
from ..brokers.base import Broker
from ..bus import EventBus
from ..channels.durable import Durable
from ..channels.hub import Hub
from ..channels.namespaces import Namespaces
from ..channels.peer_queues import PeerQueues
from ..channels.presence import Presence
from ..config import Config
from ..connection.auth import Authenticator, ResumeTokens, SessionParser
from ..connection.commands import Commands
from ..connection.dispatch import Dispatcher, H
from ..connection.live import LiveValues
from ..connection.middleware import Middleware
from ..connection.router import Router
from ..connection.socket import INLINE_COMMANDS, Socket
from ..connection.stats import Stats
from ..protocol.frames import CloseCode
from .api import ServerAPI
from .channel_commands import ChannelCommands
from .credentials import Credentials
from .plugs import Plugs
from .upgrade import UpgradeGate

log = logging.getLogger("monument_ws")


class MonumentWS(ServerAPI):
    """The plugin instance of one application: config, bus, handlers, channels and live sockets.

    ``clock`` (seconds, like ``time.time``) drives presence transitions and credential expiry;
    ``sleep`` is how the credential watcher waits. Tests inject a fake pair.
    """

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        broker: Broker | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if broker is None:
            broker = brokers.from_url(config.broker, prefix=config.broker_prefix)
        namespaces = Namespaces(config.channels)
        super().__init__(
            broker,
            namespaces,
            PeerQueues(broker, config.peer_queue_size, config.peer_queue_ttl),
            Stats(),
            Durable.of(config, broker, namespaces),
            idempotency_window=config.idempotency_window,
            idempotency_keys=config.idempotency_keys,
        )
        self.config = config
        self.bus = bus
        self.clock = clock
        self.router = Router(config.websocket, config.socket_events)
        #: frame hooks and raw listeners: ``@ws.middleware.incoming`` / ``.outgoing`` / ``.listen``
        self.middleware = Middleware()
        self.hub = Hub(
            self.broker,
            self.queues,
            bus,
            self.middleware,
            self.durable.history if self.durable is not None else None,
        )
        self.presence = Presence(self.broker, bus, config, clock, self.namespaces)
        #: The plugs folder (None when ``plugs`` is empty or sockets are off).
        self.plugs = (
            Plugs(Path(config.plugs).absolute(), self.router, bus, reload=config.reload)
            if config.plugs and config.websocket is not False
            else None
        )
        #: The application's own Prometheus registry (with ``metrics`` on), never the global one.
        self.metrics_registry: Any = None
        self.tokens = ResumeTokens(config.secret, config.resume_ttl)
        self.channel_commands = ChannelCommands(config, bus, self.hub, self.presence, self)
        self.credentials = Credentials(
            config, self.stats, self.channel_commands.join_reserved, clock, sleep
        )
        #: every ``ws:`` command: the socket's own (inline) and the server's (requests)
        #: who watches which live data value (``live_data``, ``bus.on(..., live=)``)
        self.live = LiveValues(bus, config.live_data, config.max_live_values)
        self.commands = Commands(
            {**INLINE_COMMANDS, "ws:unwatch": self.live.unwatch},
            {**self.channel_commands.table(), "ws:auth": self.credentials.auth_command},
        )
        self.dispatcher = Dispatcher(
            config,
            bus,
            self.router,
            self.stats,
            self.commands,
            self.middleware,
            self._fanout,
            self.live,
        )
        self.gate = UpgradeGate(
            config,
            bus,
            self.hub,
            self.queues,
            self.dispatcher,
            self.tokens,
            self.stats,
            self.credentials,
            self.channel_commands,
        )

    # --- what the application sets and calls ---------------------------------------

    def handler(self, event: str) -> Callable[[H], H]:
        """Register ``handler(message, socket)`` for ``event``: ``@ws.handler("echo")``.

        The function is returned as it is; see :class:`~monument_ws.connection.dispatch.Handler`
        for what it may be and return."""

        def register(fn: H) -> H:
            self.router.add(event, fn)
            return fn

        return register

    @property
    def session_parser(self) -> SessionParser | None:
        """``async def parse(request) -> Session`` run at every upgrade; None: all anonymous.

        See :mod:`monument_ws.server.credentials`."""
        return self.credentials.session_parser

    @session_parser.setter
    def session_parser(self, parser: SessionParser | None) -> None:
        self.credentials.session_parser = parser

    @property
    def authenticator(self) -> Authenticator | None:
        """``async def authenticate(socket, stage, data) -> AuthStep`` answering ws:auth."""
        return self.credentials.authenticator

    @authenticator.setter
    def authenticator(self, authenticator: Authenticator | None) -> None:
        self.credentials.authenticator = authenticator

    @property
    def draining(self) -> bool:
        """True once a graceful shutdown began: upgrades are refused, readiness fails."""
        return self.gate.draining

    async def revoke(
        self, socket: Socket, channel: str | None = None, reason: str = "revoked"
    ) -> None:
        """Take a channel away from ``socket`` (it gets ``ws:revoked``), or, without a channel,
        end its credentials: it is closed with 4401 and ``reason``."""
        if channel is None:
            await socket.close(CloseCode.UNAUTHORIZED, reason)
        else:
            await self.channel_commands.revoke(socket, channel, reason)

    async def _fanout(
        self, event: str, data: Any, channel: str | None, exclude: str | None
    ) -> None:
        """A handler's BROADCAST yield: every socket, or a channel publication; ``exclude`` is
        the sender's client id when it asked to be left out."""
        if channel is None:
            await self.broadcast(event, data, exclude=exclude)
        else:
            await self.publish(channel, event, data, exclude=exclude)

    # --- lifecycle -------------------------------------------------------------

    async def on_shutdown(self, app: web.Application) -> None:
        """Graceful shutdown: refuse upgrades, then close every socket with 1001 in batches
        over ``drain_period`` (see :meth:`Hub.drain`). The broker stops afterwards, in
        :meth:`lifespan`, so the last answers and publishes still go through."""
        self.gate.close()
        cfg = self.config
        self.stats.drained += await self.hub.drain(
            cfg.drain_period, cfg.drain_batch, cfg.drain_grace
        )

    async def lifespan(self, app: web.Application) -> AsyncIterator[None]:
        """cleanup_ctx: start the broker (then the plugs folder) with the app, stop them after
        the sockets closed. Live data values are delivered while it runs (the bus's tap)."""
        if self.config.websocket is False:
            self._warn_if_unserved()
        await self.broker.start()
        if self.durable is not None:
            try:
                await self.durable.start()
            except BaseException:
                await self.broker.stop()
                raise
        self.presence.start()
        self.bus.tap(self.live.deliver)
        if self.plugs is not None:
            try:
                await self.plugs.start(app)
            except BaseException:  # INIT failed: the app does not start, leave nothing running
                self.bus.untap(self.live.deliver)
                await self.presence.stop()
                await self._stop_durable()
                await self.broker.stop()
                raise
        yield
        if self.plugs is not None:
            await self.plugs.stop(app)
        self.bus.untap(self.live.deliver)
        await self.presence.stop()
        await self._stop_durable()
        await self.broker.stop()

    async def _stop_durable(self) -> None:
        if self.durable is not None:
            await self.durable.stop()

    def _warn_if_unserved(self) -> None:
        """Sockets are off: one warning when handlers, data providers (bus receivers of
        ``x:get:y``) or plugs are there to be served, since ``/ws`` then answers 404."""
        unserved = self.router.events()
        unserved += [
            event
            for event, signal in self.bus.signals().items()
            if ":get:" in event and signal.receivers
        ]
        folder = Path(self.config.plugs) if self.config.plugs else None
        if folder is not None and folder.is_dir() and next(folder.rglob("*.py"), None):
            unserved.append(f"the plugs in {self.config.plugs}")
        if unserved:
            shown = ", ".join(unserved[:5]) + (", …" if len(unserved) > 5 else "")
            log.warning(
                "sockets are off, so %s will never be reached (%s answers 404): set "
                "websocket=True in setup() (--websocket true, MONUMENT_WS_WEBSOCKET=true)",
                shown,
                self.config.path,
            )
