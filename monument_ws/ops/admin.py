"""The admin page: live sockets, channels with subscriber counts, presence, recent errors.

Off unless ``admin_token`` is set. ``GET <admin_path>`` serves a static page
(it holds no data); the page opens ``<admin_path>/socket`` and sends
``{"token": ...}`` as its first frame -- the token comes from the URL fragment
(``<admin_path>#token=...``), which browsers never send to the server, so it
stays out of access logs and proxies. A wrong or missing token (within 5 s)
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
import hmac
import itertools
import json
import time
import weakref
from dataclasses import asdict
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
        "broker": {"healthy": plugin.broker.healthy, "reconnects": plugin.broker.reconnects},
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
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8")

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


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>monument_ws admin</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #222; }
  h1 { font-size: 1.3rem; } h2 { font-size: 1.05rem; margin-top: 1.5rem; }
  #status { font-weight: bold; } .ok { color: #1a7f37; } .bad { color: #cf222e; }
  .totals { display: flex; gap: 1.5rem; flex-wrap: wrap; }
  .totals div { background: #f3f4f6; padding: .5rem .8rem; border-radius: 6px; }
  .totals b { display: block; font-size: 1.3rem; }
  table { border-collapse: collapse; margin-top: .4rem; }
  td, th { border-bottom: 1px solid #ddd; padding: .25rem .6rem; text-align: left; }
</style>
</head>
<body>
<h1>monument_ws admin <span id="status" class="bad">connecting</span></h1>
<div class="totals">
  <div>open sockets <b id="sockets-open">-</b></div>
  <div>channels <b id="channels-count">-</b></div>
  <div>subscriptions <b id="subscribers-count">-</b></div>
  <div>presence members <b id="presence-count">-</b></div>
  <div>errors <b id="errors-count">-</b></div>
  <div>broker <b id="broker">-</b></div>
</div>
<h2>Channels</h2>
<table id="channels"><thead><tr><th>channel</th><th>namespace</th><th>subscribers</th>
<th>presence</th></tr></thead><tbody></tbody></table>
<h2>Sockets</h2>
<table id="sockets"><thead><tr><th>socket</th><th>client</th><th>address</th><th>user</th>
<th>channels</th><th>frames in</th><th>running</th></tr></thead><tbody></tbody></table>
<h2>Recent errors</h2>
<table id="errors"><thead><tr><th>time</th><th>code</th><th>message</th><th>socket</th></tr>
</thead><tbody></tbody></table>
<script>
"use strict";
const token = new URLSearchParams(location.hash.slice(1)).get("token")
  || window.prompt("admin token") || "";
const target = new URL(location.pathname.replace(/\\/$/, "") + "/socket", location.href);
target.protocol = target.protocol === "https:" ? "wss:" : "ws:";
const status = document.getElementById("status");

function text(id, value) { document.getElementById(id).textContent = String(value); }

function fill(id, rows) {
  // textContent only: channel names and error messages come from clients.
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell === null || cell === undefined ? "-" : String(cell);
      tr.appendChild(td);
    }
    return tr;
  }));
}

function render(s) {
  text("sockets-open", s.totals.sockets);
  text("channels-count", s.totals.channels);
  text("subscribers-count", s.totals.subscribers);
  text("presence-count", s.totals.presence_members);
  text("errors-count", s.totals.errors);
  text("broker", s.broker.healthy ? "up" : "down");
  fill("channels", s.channels.map((c) => [c.channel, c.namespace, c.subscribers, c.presence]));
  fill("sockets", s.sockets.map((k) => [k.id, k.client_id, k.ip, k.user, k.channels.join(" "),
    k.frames_in, k.running]));
  fill("errors", s.errors.map((e) => [new Date(e.time * 1000).toISOString(), e.code,
    e.message, e.socket_id]));
}

function connect() {
  const ws = new WebSocket(target);
  ws.onopen = () => ws.send(JSON.stringify({ token }));
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.event === "admin:snapshot") {
      status.textContent = "live"; status.className = "ok";
      render(frame.data);
    }
  };
  ws.onclose = (event) => {
    status.className = "bad";
    if (event.code === 4401) { status.textContent = "wrong token"; return; }
    status.textContent = "reconnecting";
    setTimeout(connect, 1000 + Math.random() * 1000);
  };
}
connect();
</script>
</body>
</html>
"""
