"""The admin page: live sockets, channels with subscriber counts, presence, recent errors.

Off unless ``admin_token`` is set. ``GET <admin_path>`` serves a static page,
``admin.html`` beside this module (it holds no data); the page opens
``<admin_path>/socket`` and sends ``{"token": ...}`` as its first frame -- the
token comes from the URL fragment (``<admin_path>#token=...``), which browsers
never send to the server, so it stays out of access logs and proxies. A wrong or missing token (within 5 s)
closes the socket with 4401. Once authenticated the server pushes
``{"event": "admin:snapshot", "data": {...}}`` at once and every second, and
again whenever the page sends any frame (a refresh).

What it shows is this process's view (each process of a cluster has its own
page); presence counts come from the broker, so they cover the cluster. Names
chosen by clients (channels, error messages) are rendered as text, never as
HTML. At most :data:`LIMIT` sockets and channels are listed (the busiest
channels first); the totals always count everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import itertools
import json
import time
import weakref
from dataclasses import asdict
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .._version import __version__
from ..protocol.errors import MonumentWSError
from ..protocol.frames import CloseCode

if TYPE_CHECKING:
    from ..server.plugin import MonumentWS

#: Seconds between snapshots pushed to an admin page.
INTERVAL = 1.0
#: Seconds an admin socket has to send its token.
AUTH_TIMEOUT = 5.0
#: Sockets and channels listed at most (the totals count all of them).
LIMIT = 200
#: Recent errors listed, newest first.
ERRORS = 20


@functools.cache
def page_html() -> str:
    """The page, ``admin.html`` shipped beside this module, read once per process."""
    return resources.files("monument_ws.ops").joinpath("admin.html").read_text(encoding="utf-8")


async def snapshot(plugin: MonumentWS) -> dict[str, Any]:
    """What the admin page shows, as one JSON-ready dict."""
    hub, stats = plugin.hub, plugin.stats
    sockets = [
        {
            "id": s.id,
            "client_id": s.client_id,
            "ip": s.ip,
            "user": s.session.user,
            "stage": s.stage,
            "channels": sorted(hub.subscriptions(s)),
            "frames_in": s.frames_in,
            "running": s.running,
            "queued_bytes": s.buffered_bytes,
        }
        for s in itertools.islice(hub, LIMIT)
    ]
    counts = hub.channels()
    channels = []
    for name, subscribers in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:LIMIT]:
        presence = None
        if plugin.namespaces.options(name).presence:
            with contextlib.suppress(MonumentWSError):
                presence = await plugin.broker.presence_count(name)
        channels.append(
            {
                "channel": name,
                "namespace": plugin.namespaces.namespace(name),
                "subscribers": subscribers,
                "presence": presence,
            }
        )
    errors = [asdict(e) for e in itertools.islice(reversed(stats.recent_errors), ERRORS)]
    return {
        "server": f"monument_ws/{__version__}",
        "time": time.time(),
        "draining": plugin.draining,
        "broker": {
            "healthy": plugin.broker.healthy,
            "reconnects": plugin.broker.reconnects,
            "down": list(plugin.broker.down),
        },
        "totals": {
            "sockets": len(hub),
            "channels": len(counts),
            "subscribers": sum(counts.values()),
            "presence_members": plugin.presence.local_members(),
            "connections": stats.connections,
            "frames_in": stats.frames_in,
            "frames_out": stats.frames_out,
            "errors": sum(stats.errors.values()),
            "slow_consumers": stats.slow_consumers,
        },
        "sockets": sockets,
        "channels": channels,
        "errors": errors,
    }


def add_routes(app: web.Application, plugin: MonumentWS, path: str, token: str) -> None:
    """Mount the page at ``path`` and its socket at ``path/socket``, guarded by ``token``."""
    base = path.rstrip("/")
    open_sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=page_html(), content_type="text/html", charset="utf-8")

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=plugin.config.heartbeat or None)
        await ws.prepare(request)
        if not await _authenticated(ws, token):
            await ws.close(code=CloseCode.UNAUTHORIZED, message=b"wrong admin token")
            return ws
        open_sockets.add(ws)
        pusher = asyncio.get_running_loop().create_task(_push(ws, plugin))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:  # any frame asks for a fresh snapshot now
                    await ws.send_json({"event": "admin:snapshot", "data": await snapshot(plugin)})
        finally:
            pusher.cancel()
        return ws

    async def close_all(app: web.Application) -> None:
        for ws in list(open_sockets):
            await ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")

    app.router.add_get(base, page, name="monument_ws_admin")
    app.router.add_get(f"{base}/socket", socket, name="monument_ws_admin_socket")
    app.on_shutdown.append(close_all)


async def _authenticated(ws: web.WebSocketResponse, token: str) -> bool:
    try:
        msg = await ws.receive(timeout=AUTH_TIMEOUT)
    except TimeoutError:
        return False
    if msg.type is not WSMsgType.TEXT:
        return False
    try:
        given = json.loads(msg.data).get("token")
    except (ValueError, AttributeError):
        return False
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


async def _push(ws: web.WebSocketResponse, plugin: MonumentWS) -> None:
    with contextlib.suppress(ConnectionError, RuntimeError):
        while not ws.closed:
            await ws.send_json({"event": "admin:snapshot", "data": await snapshot(plugin)})
            await asyncio.sleep(INTERVAL)
