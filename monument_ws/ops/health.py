"""Health checks for load balancers and orchestrators.

* ``GET <health_path>/live`` -- liveness: 200 ``{"status": "ok"}`` whenever the
  process answers HTTP at all. Restart the process only when this fails.
* ``GET <health_path>/ready`` -- readiness: 200 ``{"ready": true, "broker": true,
  "draining": false}`` when new sockets should be sent here; 503 with the same
  body while the broker is disconnected (``Broker.healthy``; a Redis broker
  reconnects by itself and turns ready again) or while the server drains for
  a shutdown. A sharded Redis broker is ready while any shard serves; the body then
  lists the shards that do not in ``"down"`` (their URLs, passwords hidden): only their
  channels fail, with ``unavailable``, so the process stays in rotation. Take the process out of rotation while it fails; do not restart it.
  With a ``store`` set the body has ``"store"`` too, false (and 503) while the store's
  database cannot be reached: publishes to persisted channels fail with ``unavailable`` until
  it answers again, other channels keep working.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from ..server.plugin import MonumentWS


def add_routes(app: web.Application, plugin: MonumentWS, prefix: str) -> None:
    """Mount ``<prefix>/live`` and ``<prefix>/ready`` for ``plugin``."""

    async def live(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        broker = plugin.broker.healthy
        store = plugin.durable is None or plugin.durable.store.healthy
        body: dict[str, object] = {
            "ready": broker and store and not plugin.draining,
            "broker": broker,
            "draining": plugin.draining,
        }
        if plugin.broker.down:
            body["down"] = list(plugin.broker.down)
        if plugin.durable is not None:
            body["store"] = store
        return web.json_response(body, status=200 if body["ready"] else 503)

    base = prefix.rstrip("/")
    app.router.add_get(f"{base}/live", live, name="monument_ws_live")
    app.router.add_get(f"{base}/ready", ready, name="monument_ws_ready")
