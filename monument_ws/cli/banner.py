"""What ``run`` says once the server listens: a short banner, and the Origin warning.

aiohttp's ``run_app`` calls its ``print`` argument once every site listens;
``run`` passes one that prints :func:`render` instead of aiohttp's line, so a
start that fails (busy port, missing extra, failing ``plugs/INIT.py``) prints
no banner, only its error; with ``--log-format json`` the banner is a log record. With ``--workers`` each worker sends its
:class:`Summary` to the parent, which prints the banner once, for all of them.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

import click
from aiohttp import web

from .._version import __version__
from ..mount import MONUMENT_WS
from .loading import DEFAULT_APP, PLUGS_APP

log = logging.getLogger("monument_ws.cli")


@dataclass(frozen=True, slots=True)
class Summary:
    """What the banner tells of one started app (plain data: workers pickle it)."""

    #: False when the app has no monument_ws (no ``monument_ws.setup``)
    mounted: bool
    #: what is served, in words (:func:`app_label`)
    app: str = ""
    websocket: str = "false"
    path: str = "/ws"
    broker: str = ""
    plugs: str = ""
    plug_events: int = 0
    plug_errors: int = 0
    reload: bool = False
    allowed_origins: tuple[str, ...] = ()
    #: the endpoints' paths and wire formats (``endpoints``)
    endpoints: tuple[tuple[str, str], ...] = ()


def app_label(target: str) -> str:
    """How the banner names the app ``run`` serves from ``target`` (its MODULE:FACTORY)."""
    if target == PLUGS_APP:
        return "the plugs folder only (a plain app: no pages or routes besides the sockets)"
    if target == DEFAULT_APP:
        return "the demo (no ./plugs here; monument-ws new DIR copies it)"
    return target


def describe(app: web.Application, target: str) -> Summary:
    """The :class:`Summary` of ``app``, served from ``target``, once started (its plugs folder
    is loaded by then)."""
    plugin = app.get(MONUMENT_WS)
    if plugin is None:
        return Summary(mounted=False, app=app_label(target))
    cfg = plugin.config
    plugs = plugin.plugs
    return Summary(
        mounted=True,
        app=app_label(target),
        websocket=str(cfg.websocket).lower(),
        path=cfg.path,
        broker=redact(cfg.broker),
        plugs=str(plugs.folder) if plugs is not None else "",
        plug_events=len(plugs.events) if plugs is not None else 0,
        plug_errors=len(plugs.table.errors) if plugs is not None else 0,
        reload=plugs is not None and plugs.watching,
        allowed_origins=cfg.allowed_origins,
        endpoints=cfg.endpoints,
    )


def redact(url: str) -> str:
    """``url`` without its user, password and ``password=`` query parameter."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "password"])
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return f"{shown}?{query}" if query else shown


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is reachable only from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _hosts(host: str) -> list[str]:
    """The names a client can reach ``host`` by: a wildcard address means every interface."""
    if host in ("", "0.0.0.0", "::"):
        return ["127.0.0.1", socket.gethostname()]
    return [f"[{host}]" if ":" in host else host]


def render(summary: Summary, host: str, port: int, *, tls: bool, workers: int) -> str:
    """The banner: the app's and the sockets' URLs, websocket mode, broker, plugs, workers."""
    scheme = "https" if tls else "http"
    names = _hosts(host)
    every = " (all interfaces)" if host in ("", "0.0.0.0", "::") else ""
    shown = f"[{host}]" if ":" in host else host
    lines = [f"monument-ws {__version__} listening on {scheme}://{shown}:{port}/{every}"]
    if summary.app:
        lines.append(f"  app:      {summary.app}")
    if not summary.mounted:
        lines.append("  sockets:  none (the app does not call monument_ws.setup)")
    elif summary.websocket == "false":
        lines.append("  sockets:  off (websocket: false)")
    else:
        urls = ", ".join(
            f"{scheme.replace('http', 'ws')}://{n}:{port}{summary.path}" for n in names
        )
        lines.append(f"  sockets:  {urls} (websocket: {summary.websocket})")
        for path, name in summary.endpoints:
            urls = ", ".join(f"{scheme.replace('http', 'ws')}://{n}:{port}{path}" for n in names)
            lines.append(f"            {urls} ({name})")
    if summary.mounted:
        lines.append(f"  broker:   {summary.broker}")
        if not summary.plugs:
            lines.append("  plugs:    off")
        else:
            loaded = f"{summary.plug_events} event{'' if summary.plug_events == 1 else 's'}"
            if summary.plug_errors:
                loaded += f", {summary.plug_errors} failed to load (see the log)"
            if summary.reload:
                loaded += ", reloaded on change"
            lines.append(f"  plugs:    {summary.plugs} ({loaded})")
    lines.append(f"  workers:  {workers}")
    return "\n".join(lines)


def announce(
    summary: Summary, host: str, port: int, *, tls: bool, workers: int, log_format: str
) -> None:
    """The Origin warning if due, then the banner: on stderr, or as one log record with
    ``--log-format json`` (whose stderr holds only JSON lines)."""
    warn_origin(summary, host)
    text = render(summary, host, port, tls=tls, workers=workers)
    if log_format == "json":
        log.info(text)
    else:
        click.echo(text, err=True)


def warn_origin(summary: Summary, host: str) -> None:
    """Log that the Origin check does not stop DNS rebinding when sockets listen beyond
    loopback with no ``allowed_origins`` set."""
    if not summary.mounted or summary.websocket == "false" or summary.allowed_origins:
        return
    if is_loopback(host):
        return
    log.warning(
        "listening on %s, beyond loopback, with allowed_origins empty: the Origin check only "
        "compares a browser's Origin with the Host header, which DNS rebinding defeats (a "
        "hostile page whose own name resolves to this server passes it). Accept only your "
        "host names in front of the server (a reverse proxy's server_name) or authenticate "
        "sockets; set allowed_origins to the origins your pages are served from "
        "(--allowed-origins https://app.example.com or MONUMENT_WS_ALLOWED_ORIGINS); it adds "
        "origins, the Host match stays.",
        host,
    )
