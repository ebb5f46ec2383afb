"""``setup(app)``: mount monument_ws on an aiohttp application.

::

    from aiohttp import web
    import monument_ws

    app = web.Application()
    ws = monument_ws.setup(app, websocket=True)

    @ws.handler("echo")
    async def echo(message, socket):
        return message.data

With ``websocket`` false (the default) no socket route is mounted at all. The
plugin (:class:`~monument_ws.server.plugin.MonumentWS`) lives under
:data:`MONUMENT_WS` (a ``web.AppKey``). Operating endpoints, each off by default:
Prometheus metrics (:mod:`monument_ws.ops.metrics`), health checks
(:mod:`monument_ws.ops.health`) and the admin page (:mod:`monument_ws.ops.admin`).
This module sits above both the server and the ops endpoints, so neither imports the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from .brokers.base import Broker
from .bus import EventBus, events
from .config import Config
from .ops import admin, health
from .protocol import codecs
from .protocol.errors import ConfigError, MissingExtra
from .server import static
from .server.plugin import MonumentWS

#: Where ``setup()`` keeps the plugin: ``app[MONUMENT_WS]``.
MONUMENT_WS = web.AppKey("monument_ws", MonumentWS)


def setup(
    app: web.Application,
    config: Config | Mapping[str, Any] | None = None,
    *,
    bus: EventBus | None = None,
    broker: Broker | str | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    **settings: Any,
) -> MonumentWS:
    """Mount monument_ws on ``app`` and return the plugin instance.

    ``config`` is a :class:`Config` or a mapping of settings (names or
    aliases, e.g. ``{"webSocket": "data"}``); ``settings`` override it.
    ``bus`` defaults to the module-level :data:`monument_ws.events`; pass an
    :class:`EventBus` to give this application its own. ``broker`` defaults to
    the one the ``broker`` setting names (``memory://``); a string here is that
    setting (``broker="redis://..."``). ``endpoints={"/ss": "serverless-sockets"}`` (a
    setting like any) serves more socket routes beside ``path``, each speaking the named
    wire format (:mod:`monument_ws.protocol.codecs`) and sharing everything else. ``clock`` (seconds) drives presence
    transitions and credential expiry, ``sleep`` is how the credential watcher
    waits (``auth_timeout``, ``Session.expires_at``); tests inject a fake pair.
    """
    if MONUMENT_WS in app:
        raise RuntimeError("monument_ws.setup() was already called for this application")
    if isinstance(broker, str):
        settings["broker"], broker = broker, None
    if isinstance(config, Config):
        cfg = config.replace(**settings) if settings else config
    else:
        cfg = Config.load(config, settings)
    plugin = MonumentWS(cfg, bus if bus is not None else events, broker, clock, sleep)
    app[MONUMENT_WS] = plugin
    app.cleanup_ctx.append(plugin.lifespan)
    if cfg.websocket is not False:
        app.router.add_get(cfg.path, plugin.gate.handle, name="monument_ws")
        for path, name in cfg.endpoints:
            if path == cfg.path:
                raise ConfigError(f"endpoint {path} is the main socket path; give it another")
            app.router.add_get(path, plugin.gate.endpoint(codecs.codec(name)))
        app.on_shutdown.append(plugin.on_shutdown)
        if cfg.client_path:
            static.add_routes(app, cfg.client_path)
    if cfg.metrics:
        _add_metrics(app, plugin)
    if cfg.health:
        health.add_routes(app, plugin, cfg.health_path)
    if cfg.admin_token:
        admin.add_routes(app, plugin, cfg.admin_path, cfg.admin_token)
    return plugin


def _add_metrics(app: web.Application, plugin: MonumentWS) -> None:
    try:
        from .ops import metrics  # only with the metrics extra: prometheus-client
    except ImportError:
        raise MissingExtra("metrics", "prometheus-client", "metrics") from None
    plugin.metrics_registry = metrics.registry_for(plugin)
    app.router.add_get(
        plugin.config.metrics_path,
        metrics.handler(plugin.metrics_registry),
        name="monument_ws_metrics",
    )
