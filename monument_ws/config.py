"""One typed configuration schema, filled from code, a file, the environment and CLI flags.

Every key is declared once in :class:`Config` with its type, default and
documentation (``option(...)``). All sources go through the same parser, so
``MONUMENT_WS_WEBSOCKET=false`` in the environment, ``--websocket false`` on the
command line and ``{"webSocket": False}`` in code mean the same thing.

Precedence (later wins): schema defaults < the caller's defaults < config file <
environment < code/CLI.

Booleans read from strings: ``false/0/off/no`` are false, ``true/1/on/yes``
true (any case). The ``websocket`` key also takes ``"data"`` and
``"passthrough"``; any other value is a :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import tomllib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from .protocol.errors import ConfigError

log = logging.getLogger("monument_ws.config")

WebSocketMode = bool | Literal["data", "passthrough"]

ENV_PREFIX: Final = "MONUMENT_WS_"

_FALSE: Final = frozenset({"false", "0", "off", "no"})
_TRUE: Final = frozenset({"true", "1", "on", "yes"})


#: ``policy(socket, channel, query) -> bool`` (or an awaitable of it); ``socket`` is the
#: :class:`~monument_ws.Socket` asking (typed loosely here: the config layer sits below it).
PolicyFunction = Callable[[Any, str, Any], "bool | Awaitable[bool]"]
Policy = Literal["anyone", "subscribers", "nobody"] | PolicyFunction

_NAMED = ("anyone", "subscribers", "nobody")


@dataclass(frozen=True, slots=True)
class ChannelOptions:
    """What a namespace's channels do."""

    #: publications kept per channel for recovery (0: no history, no recovery)
    history_size: int = 100
    #: seconds a publication stays in history
    history_ttl: float = 300.0
    #: keep a member list (ws:presence)
    presence: bool = False
    #: push ws:join / ws:leave to subscribers when members come and go
    join_leave: bool = False
    #: push ws:member (the member, its ``state`` the transition) to subscribers at each presence
    #: transition: connected, disconnected, reconnected, removed (needs ``presence``)
    presence_events: bool = False
    #: who may subscribe from a socket
    subscribe: Policy = "anyone"
    #: who may publish from a socket (ws:publish)
    publish: Policy = "nobody"
    #: only sockets in the "authenticated" stage may subscribe
    authenticated: bool = False
    #: write every publication to the store (the ``store`` setting), which then numbers them and
    #: answers recoveries beyond the broker's history (see monument_ws.stores)
    persist: bool = False
    #: with ``persist``: seconds a publication stays in the store (0: no limit by age)
    persist_ttl: float = 0.0
    #: with ``persist``: publications kept per channel in the store (0: no limit by count)
    persist_size: int = 0

    def __post_init__(self) -> None:
        for name in ("subscribe", "publish"):
            value = getattr(self, name)
            if not callable(value) and value not in _NAMED:
                raise ValueError(
                    f"{name} must be one of {', '.join(_NAMED)} or a function, got {value!r}"
                )
        if self.history_size < 0 or self.history_ttl < 0:
            raise ValueError("history_size and history_ttl must not be negative")
        if self.persist_size < 0 or self.persist_ttl < 0:
            raise ValueError("persist_size and persist_ttl must not be negative")


#: The options of a channel no namespace pattern matches.
DEFAULT_CHANNEL = ChannelOptions()


def parse_namespaces(value: object) -> tuple[tuple[str, ChannelOptions], ...]:
    """Config parser: ``{"chat:*": {"publish": "anyone", "history_size": 50}, ...}``."""
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return value
    if isinstance(value, str):
        import json

        value = json.loads(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a mapping of pattern to options, got {value!r}")
    known = {f.name for f in dataclasses.fields(ChannelOptions)}
    out = []
    for pattern, options in value.items():
        if isinstance(options, ChannelOptions):
            out.append((str(pattern), options))
            continue
        if not isinstance(options, Mapping):
            raise ValueError(f"options of {pattern!r} must be a mapping")
        unknown = set(options) - known
        if unknown:
            raise ValueError(
                f"unknown channel options {sorted(unknown)} for {pattern!r}; known: {sorted(known)}"
            )
        out.append((str(pattern), ChannelOptions(**options)))
    return tuple(out)


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _FALSE:
            return False
        if lowered in _TRUE:
            return True
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected a boolean (true/false/1/0/on/off/yes/no), got {value!r}")


def parse_websocket(value: object) -> WebSocketMode:
    """``false/true/"data"/"passthrough"`` (and the boolean spellings); anything else is an error."""
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("data", "passthrough"):
            return "data" if lowered == "data" else "passthrough"
    try:
        return parse_bool(value)
    except ValueError:
        raise ValueError(
            f"expected one of false, true, data, passthrough "
            f"(or on/off, yes/no, 1/0), got {value!r}"
        ) from None


def parse_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""))
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def parse_float(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def parse_seconds(value: object) -> float:
    """A duration in seconds: a number, like :func:`parse_float`; the help shows SECONDS."""
    return parse_float(value)


def parse_bytes(value: object) -> int:
    """A size in bytes: an integer, like :func:`parse_int`; the help shows BYTES."""
    return parse_int(value)


def parse_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


_BROKER_SCHEMES: Final = ("redis://", "rediss://", "unix://")


def parse_broker(value: object) -> str:
    """A broker URL, or several Redis URLs separated by commas (shards): each checked for
    its scheme and port, none empty or twice; returned with the spaces around each removed.
    A list may also be given as a list of strings."""
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        value = ",".join(value)
    text = parse_str(value)
    parts = [part.strip() for part in text.split(",")]
    if len(parts) == 1 and (parts[0] == "memory" or parts[0].startswith("memory://")):
        return parts[0]
    for part in parts:
        if not part.startswith(_BROKER_SCHEMES):
            where = f" in the list {text!r}" if len(parts) > 1 else ""
            raise ValueError(
                f"unknown broker URL {part!r}{where}: use memory://, redis://host:6379/0, or "
                "several redis:// URLs separated by commas"
            )
        try:
            port = urlsplit(part).port  # raises for a port that is not a number
        except ValueError as exc:
            raise ValueError(f"bad broker URL {part!r}: {exc}") from None
        if port == 0:
            raise ValueError(f"bad broker URL {part!r}: port 0")
    if len(set(parts)) != len(parts):
        raise ValueError(f"bad broker URL list {text!r}: a shard is listed twice")
    return ",".join(parts)


def parse_str_list(value: object) -> tuple[str, ...]:
    """A list of strings, or one comma-separated string (as from the environment)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def parse_path(value: object) -> str:
    """A URL path: starts with ``/``."""
    text = parse_str(value)
    if not text.startswith("/"):
        raise ValueError(f"expected a URL path starting with '/', got {value!r}")
    return text


def parse_endpoints(value: object) -> tuple[tuple[str, str], ...]:
    """Extra WebSocket routes and the wire format each speaks: a mapping ``{"/ss":
    "serverless-sockets"}``, ``PATH=FORMAT`` strings (a repeated flag), or one comma-separated
    string of them (the environment). A format :data:`~monument_ws.protocol.codecs.CODECS`
    does not name is an error."""
    from .protocol.codecs import CODECS

    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        pairs = [(str(path), name) for path, name in value.items()]
    elif isinstance(value, Iterable):
        pairs = []
        for item in value:
            if isinstance(item, tuple) and len(item) == 2:
                pairs.append((str(item[0]), item[1]))
            elif isinstance(item, str) and "=" in item:
                path, _, name = item.partition("=")
                pairs.append((path.strip(), name.strip()))
            else:
                raise ValueError(f"expected PATH=FORMAT, got {item!r}")
    else:
        raise ValueError(f"expected a mapping of URL path to wire format, got {value!r}")
    seen: set[str] = set()
    for path, name in pairs:
        if not path.startswith("/"):
            raise ValueError(f"expected a URL path starting with '/', got {path!r}")
        if path in seen:
            raise ValueError(f"the path {path} is given twice")
        seen.add(path)
        if name not in CODECS:
            raise ValueError(f"unknown wire format {name!r} for {path}; known: {', '.join(CODECS)}")
    return tuple(pairs)


def parse_log_format(value: object) -> Literal["text", "json"]:
    text = parse_str(value).strip().lower()
    if text == "text":
        return "text"
    if text == "json":
        return "json"
    raise ValueError(f"expected 'text' or 'json', got {value!r}")


#: The headings of ``monument-ws run -h``, in order: every key names one as its ``group``.
GROUPS: Final = {
    "server": "Server",
    "limits": "Limits",
    "channels": "Channels and presence",
    "brokers": "Brokers",
    "auth": "Auth and origins",
    "operations": "Operations",
    "plugs": "Plugs",
}

#: The placeholder of a key's value in ``run -h``, by parser, unless the key gives a ``metavar``.
METAVARS: Final[Mapping[Callable[[object], Any], str]] = {
    parse_bool: "BOOL",
    parse_websocket: "MODE",
    parse_seconds: "SECONDS",
    parse_bytes: "BYTES",
    parse_int: "N",
    parse_float: "NUMBER",
    parse_str: "TEXT",
    parse_str_list: "LIST",
    parse_path: "PATH",
    parse_log_format: "text|json",
    parse_namespaces: "JSON",
    parse_endpoints: "PATH=FORMAT",
}


def option(
    default: Any,
    doc: str,
    parse: Callable[[object], Any],
    *,
    group: str,
    aliases: tuple[str, ...] = (),
    deprecated: tuple[str, ...] = (),
    minimum: float | None = None,
    metavar: str | None = None,
    repeatable: bool = False,
) -> Any:
    """Declare one configuration key: default, documentation, parser and accepted aliases.

    ``group`` (a key of :data:`GROUPS`) is the heading it is listed under in
    ``monument-ws run -h``; ``metavar`` names its value there when the parser's
    (:data:`METAVARS`) is too vague, e.g. ``URL`` for a string; a ``repeatable`` key's flag
    may be given several times, each value one item (``--endpoint A --endpoint B``). ``deprecated``
    names are old spellings still accepted (in code, files and the environment);
    the first use of each in a process logs a warning naming the new key.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}, got {group!r}")
    meta = {
        "doc": doc,
        "parse": parse,
        "aliases": aliases,
        "deprecated": deprecated,
        "minimum": minimum,
        "group": group,
        "metavar": metavar or METAVARS.get(parse, "VALUE"),
        "repeatable": repeatable,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Config:
    """Every setting of monument_ws. Build it with :meth:`load`; instances are immutable."""

    websocket: WebSocketMode = option(
        False,
        "Socket route: false (none), true (data events, handlers and passthrough), "
        "'data' (data events and ws: commands only) or 'passthrough' (every event "
        "goes to handlers and the bus, :get: included).",
        parse_websocket,
        aliases=("webSocket", "webSockets"),
        group="server",
    )
    path: str = option(
        "/ws", "URL path of the WebSocket route.", parse_str, group="server", metavar="PATH"
    )
    endpoints: tuple[tuple[str, str], ...] = option(
        (),
        "More WebSocket routes, each speaking another wire format (PATH=FORMAT, e.g. "
        "/ss=serverless-sockets; the flag repeats, the environment separates them with commas): "
        "same handlers, channels, auth and limits as the main route. Formats: serverless-sockets, "
        "super-scaled-sockets, owlmeans.",
        parse_endpoints,
        aliases=("endpoint",),
        group="server",
        repeatable=True,
    )
    client_path: str = option(
        "/monument_ws/client.js",
        "URL path where the plugin serves the browser client (monument.js, an ES module) "
        "while the socket route is on, with its TypeScript declarations beside it "
        "(client.js -> client.d.ts); ?v=<version> makes both cacheable for a year. "
        "Empty: not served.",
        parse_str,
        aliases=("clientPath",),
        group="server",
        metavar="PATH",
    )
    socket_events: tuple[str, ...] = option(
        ("*",),
        "Glob patterns of the events a socket may trigger. Events under the reserved "
        "prefixes ws:, route:, server:, error: and client. are always refused.",
        parse_str_list,
        aliases=("socketEvents",),
        group="server",
        metavar="GLOB,...",
    )
    data_timeout: float = option(
        30.0,
        "Seconds a data event (x:get:y) waits for its x:set:y answer before a timeout error.",
        parse_seconds,
        aliases=("dataTimeout",),
        minimum=0.0,
        group="limits",
    )
    live_data: bool = option(
        False,
        "Data events are live values: a socket that asked x:get:y without data receives "
        "every later unscoped x:set:y emit until it closes or sends ws:unwatch. A provider's "
        "bus.on(..., live=) overrides it for its event.",
        parse_bool,
        aliases=("liveData",),
        group="server",
    )
    max_live_values: int = option(
        64,
        "Live data values one socket may watch at once; a request that would start one more "
        "gets a rate_limited error.",
        parse_int,
        aliases=("maxLiveValues",),
        minimum=1,
        group="limits",
    )
    max_message_size: int = option(
        1_048_576,
        "Largest incoming frame in bytes (real size, not declared); larger closes with 1009.",
        parse_bytes,
        aliases=("maxMessageSize", "payloadLimit"),
        minimum=1,
        group="limits",
    )
    max_bad_frames: int = option(
        10,
        "Bad frames in a row after which the socket is closed with 1008.",
        parse_int,
        aliases=("maxBadFrames",),
        minimum=1,
        group="limits",
    )
    max_inflight: int = option(
        64,
        "Requests a socket may have running at once; more wait (see max_waiting).",
        parse_int,
        aliases=("maxInflight",),
        minimum=1,
        group="limits",
    )
    max_waiting: int = option(
        1024,
        "Requests a socket may have waiting for a free slot once max_inflight run; "
        "more get a rate_limited error.",
        parse_int,
        aliases=("maxWaiting",),
        deprecated=("max_queued", "maxQueued"),
        minimum=0,
        group="limits",
    )
    call_timeout: float = option(
        60.0,
        "Default seconds socket.call() waits for the client's answer (0: forever).",
        parse_seconds,
        aliases=("callTimeout",),
        minimum=0.0,
        group="limits",
    )
    send_buffer_frames: int = option(
        1024,
        "Frames waiting to be written to one socket (its send buffer); beyond it the socket "
        "is closed with 4008 (slow consumer).",
        parse_int,
        aliases=("sendBufferFrames",),
        deprecated=("send_queue_limit", "sendQueueLimit"),
        minimum=1,
        group="limits",
    )
    heartbeat: float = option(
        25.0,
        "Seconds between WebSocket pings from the server (0 disables); also told to "
        "clients in ws:welcome as their heartbeat period.",
        parse_seconds,
        minimum=0.0,
        group="server",
    )
    presence_sync: float = option(
        5.0,
        "Seconds between presence sweeps (refresh local members, age silent ones).",
        parse_seconds,
        aliases=("presenceSync",),
        minimum=0.01,
        group="channels",
    )
    presence_disconnect: float = option(
        60.0,
        "Seconds of silence after which a member becomes disconnected.",
        parse_seconds,
        aliases=("presenceDisconnect",),
        minimum=0.0,
        group="channels",
    )
    presence_removal: float = option(
        120.0,
        "Seconds a disconnected member stays listed before it is removed.",
        parse_seconds,
        aliases=("presenceRemoval",),
        minimum=0.0,
        group="channels",
    )
    compression: bool = option(
        False,
        "permessage-deflate. Off by default: it defeats encode-once fan-out and costs "
        "memory per socket.",
        parse_bool,
        group="server",
    )
    secret: str = option(
        "",
        "Key that signs resume secrets. Empty: a random key per process, so a client "
        "can only resume on the process that issued it (run --workers N generates one "
        "its workers share). Set it (the same on every process) when running several.",
        parse_str,
        group="auth",
        metavar="SECRET",
    )
    resume_ttl: float = option(
        86_400.0,
        "Seconds a resume secret stays valid.",
        parse_seconds,
        aliases=("resumeTtl",),
        minimum=0.0,
        group="auth",
    )
    broker: str = option(
        "memory://",
        "Where channels, history, presence and the client registry live: memory:// "
        "(one process) or redis://[:password@]host:6379/db (rediss:// for TLS) to join "
        "many processes. Several Redis URLs separated by commas spread the channels over "
        "that many Redis servers (shards), by a hash of each channel's name.",
        parse_broker,
        group="brokers",
        metavar="URL",
    )
    broker_prefix: str = option(
        "monument_ws",
        "Prefix of every Redis key and pub/sub channel, so several apps share one Redis.",
        parse_str,
        aliases=("brokerPrefix",),
        group="brokers",
        metavar="PREFIX",
    )
    store: str = option(
        "",
        "Where channels with persist: true in their namespace write every publication: "
        "postgresql://user@host:5432/db (needs the postgres extra). Empty: no store.",
        parse_str,
        group="brokers",
        metavar="URL",
    )
    store_schema: str = option(
        "monument_ws",
        "The PostgreSQL schema of the store's tables, so several apps share one database.",
        parse_str,
        group="brokers",
        metavar="SCHEMA",
    )
    store_queue: int = option(
        10_000,
        "Publications waiting to be written to the store, per process; beyond it a publish to "
        "a persisted channel fails with unavailable at once.",
        parse_int,
        minimum=1,
        group="brokers",
    )
    store_timeout: float = option(
        5.0,
        "Seconds a store write or read may take before it fails with unavailable.",
        parse_seconds,
        minimum=0.1,
        group="brokers",
    )
    store_recovery_limit: int = option(
        10_000,
        "Most publications a recovery from the store replays; a subscriber that missed more "
        "gets recovered: false.",
        parse_int,
        minimum=1,
        group="brokers",
    )
    channels: tuple[tuple[str, ChannelOptions], ...] = option(
        (),
        "Channel namespaces: a mapping of glob pattern to options (history_size, history_ttl, "
        "presence, join_leave, presence_events, subscribe, publish, persist, persist_ttl, "
        "persist_size), first match wins; e.g. "
        '{"chat:*": {"publish": "subscribers"}}. Unmatched channels: anyone may '
        "subscribe, nobody may publish from a socket, 100 messages of history for 300 s.",
        parse_namespaces,
        group="channels",
    )
    auth_timeout: float = option(
        10.0,
        "With require_auth: seconds a socket has to reach the 'authenticated' stage over "
        "ws:auth before it is closed with 1008.",
        parse_seconds,
        aliases=("authTimeout",),
        minimum=0.0,
        group="auth",
    )
    require_auth: bool = option(
        False,
        "Staged auth: until a socket is authenticated over ws:auth, only ws:auth, ws:ping "
        "and ws:heartbeat are accepted (others get unauthorized).",
        parse_bool,
        aliases=("requireAuth",),
        group="auth",
    )
    rate_limit: float = option(
        200.0,
        "Frames per second a socket may send on average (token bucket); beyond it frames get "
        "rate_limited, and a socket refused rate_burst times in one flooding episode (which "
        "lasts until its bucket is full again) is closed with 4029.",
        parse_float,
        aliases=("rateLimit",),
        minimum=0.0,
        group="limits",
        metavar="PER_SECOND",
    )
    rate_burst: int = option(
        400,
        "Frames a socket may send at once above rate_limit (the bucket's size).",
        parse_int,
        aliases=("rateBurst",),
        minimum=1,
        group="limits",
    )
    upgrade_rate: float = option(
        50.0,
        "Socket upgrades per second per client address (burst: 5 seconds' worth, for NATs "
        "after a deploy); beyond it HTTP 503 with Retry-After. 0 turns it off.",
        parse_float,
        aliases=("upgradeRate",),
        minimum=0.0,
        group="limits",
        metavar="PER_SECOND",
    )
    max_sockets_per_ip: int = option(
        1024,
        "Open sockets per client address; more get HTTP 503 at the upgrade.",
        parse_int,
        aliases=("maxSocketsPerIp",),
        minimum=1,
        group="limits",
    )
    max_sockets_per_user: int = option(
        32,
        "Open sockets per user (from the session parser); more are closed with 4029.",
        parse_int,
        aliases=("maxSocketsPerUser",),
        minimum=1,
        group="limits",
    )
    header_timeout: float = option(
        5.0,
        "monument-ws run: seconds a connection has to send a complete request head (and, "
        "between requests, the next one) before it is closed, so connections that never "
        "finish their head do not stay open. aiohttp's keepalive_timeout; an upgraded "
        "socket is not affected.",
        parse_seconds,
        aliases=("headerTimeout",),
        minimum=0.1,
        group="limits",
    )
    max_connections_per_ip: int = option(
        2048,
        "monument-ws run: open TCP connections per peer address, counted from accept "
        "(requests and sockets alike; keep it above max_sockets_per_ip); more are closed "
        "at once.",
        parse_int,
        aliases=("maxConnectionsPerIp",),
        minimum=1,
        group="limits",
    )
    trusted_proxies: tuple[str, ...] = option(
        (),
        "Addresses or networks of reverse proxies whose X-Forwarded-For is believed for the "
        "client address; from any other peer the header is ignored.",
        parse_str_list,
        aliases=("trustedProxies",),
        group="server",
        metavar="ADDRESS,...",
    )
    max_subscriptions: int = option(
        128,
        "Channels one socket may be subscribed to; more get rate_limited.",
        parse_int,
        aliases=("maxSubscriptions",),
        minimum=1,
        group="limits",
    )
    send_buffer_bytes: int = option(
        4_194_304,
        "Bytes waiting to be written to one socket (besides send_buffer_frames frames); "
        "beyond either the socket is closed with 4008 (slow consumer).",
        parse_bytes,
        aliases=("sendBufferBytes",),
        deprecated=("send_queue_bytes", "sendQueueBytes"),
        minimum=1024,
        group="limits",
    )
    allowed_origins: tuple[str, ...] = option(
        (),
        "Origins (scheme://host[:port]) allowed to open a socket besides the server's own "
        "host. A browser upgrade from any other Origin is refused with HTTP 403.",
        parse_str_list,
        aliases=("allowedOrigins",),
        group="auth",
        metavar="ORIGIN,...",
    )
    # --- operating: graceful shutdown, metrics, health, admin page, logs ---
    drain_period: float = option(
        10.0,
        "Graceful shutdown: seconds over which the sockets are closed with 1001, in batches "
        "of drain_batch, so clients reconnect to other processes at an even rate. Keep the "
        "process manager's stop timeout above drain_period + drain_grace.",
        parse_seconds,
        aliases=("drainPeriod",),
        minimum=0.0,
        group="operations",
    )
    drain_batch: int = option(
        100,
        "Graceful shutdown: sockets closed together; up to this many close at once.",
        parse_int,
        aliases=("drainBatch",),
        minimum=1,
        group="operations",
    )
    drain_grace: float = option(
        5.0,
        "Graceful shutdown: seconds a closing socket's running requests get to answer "
        "(new requests get unavailable) before it closes anyway.",
        parse_seconds,
        aliases=("drainGrace",),
        minimum=0.0,
        group="operations",
    )
    metrics: bool = option(
        False,
        "Serve Prometheus metrics at metrics_path (pip install 'monument-ws[metrics]').",
        parse_bool,
        group="operations",
    )
    metrics_path: str = option(
        "/metrics",
        "URL path of the Prometheus metrics.",
        parse_path,
        aliases=("metricsPath",),
        group="operations",
    )
    health: bool = option(
        False,
        "Serve health checks: <health_path>/live (the process answers) and "
        "<health_path>/ready (503 while the broker is disconnected or the server drains).",
        parse_bool,
        group="operations",
    )
    health_path: str = option(
        "/health",
        "URL path prefix of the health checks.",
        parse_path,
        aliases=("healthPath",),
        group="operations",
    )
    admin_token: str = option(
        "",
        "Token of the admin page (live sockets, channels, presence, recent errors); empty: "
        "no admin page. Open <admin_path>#token=<token>.",
        parse_str,
        aliases=("adminToken",),
        group="operations",
        metavar="TOKEN",
    )
    admin_path: str = option(
        "/_monument/admin",
        "URL path of the admin page.",
        parse_path,
        aliases=("adminPath",),
        group="operations",
    )
    log_format: Literal["text", "json"] = option(
        "text",
        "Log lines written by `monument-ws run`: 'text' or 'json' (one object per line); "
        "both carry socket_id and client_id for lines about a socket.",
        parse_log_format,
        aliases=("logFormat",),
        group="operations",
    )

    certfile: str = option(
        "",
        "PEM certificate chain for TLS: with keyfile, `monument-ws run` serves https:// and "
        "wss:// instead of http:// and ws://. Empty: plain TCP (e.g. behind a TLS proxy).",
        parse_str,
        group="server",
        metavar="FILE",
    )
    keyfile: str = option(
        "",
        "PEM private key of certfile (empty: the key is in certfile).",
        parse_str,
        group="server",
        metavar="FILE",
    )
    peer_queue_size: int = option(
        100,
        "Peer queue: messages kept per client and direction (enqueue/consume); beyond it the "
        "oldest is dropped.",
        parse_int,
        aliases=("peerQueueSize",),
        deprecated=("queue_size", "queueSize"),
        minimum=1,
        group="channels",
    )
    idempotency_window: float = option(
        300.0,
        "Seconds a channel remembers a publish's idempotency key: a retry with the same key "
        "within it publishes nothing and gets the first publication's offset and epoch.",
        parse_seconds,
        aliases=("idempotencyWindow",),
        minimum=0.001,
        group="channels",
    )
    idempotency_keys: int = option(
        10_000,
        "Idempotency keys one channel remembers at most; beyond it the oldest are forgotten "
        "first, even within idempotency_window.",
        parse_int,
        aliases=("idempotencyKeys",),
        minimum=1,
        group="channels",
    )
    peer_queue_ttl: float = option(
        120.0,
        "Peer queue: seconds a message waits to be consumed before it is dropped; the broker "
        "keeps a client's queue this long after it left, so a reconnect to any process finds "
        "it (the default equals presence_removal).",
        parse_seconds,
        aliases=("peerQueueTtl",),
        deprecated=("queue_ttl", "queueTtl"),
        minimum=0.001,
        group="channels",
    )
    plugs: str = option(
        "./plugs",
        "The plugs folder: plugs/NAME.py handles the event NAME (plugs/chat/send.py: chat/send). "
        "Relative to the current directory; empty turns plugs off. A missing folder serves "
        "no plugs.",
        parse_str,
        aliases=("plugsFolder",),
        group="plugs",
        metavar="DIR",
    )
    reload: bool = option(
        False,
        "Watch the plugs folder and hot-reload changed plugs without dropping sockets "
        "(needs watchfiles: pip install 'monument-ws[reload]'). For development.",
        parse_bool,
        group="plugs",
    )
    sync_memory: int = option(
        262_144,
        "Bytes of SYNC objects remembered per socket (the last one sent per event, to send "
        "patches); beyond it the least recently synced events are forgotten and sent whole "
        "next time.",
        parse_bytes,
        aliases=("syncMemory",),
        minimum=0,
        group="limits",
    )

    def __post_init__(self) -> None:
        # Direct construction (Config(websocket="off")) gets the same parsing as load().
        for name, value in _normalise(self.as_dict(), "settings").items():
            object.__setattr__(self, name, value)

    # --- building ---------------------------------------------------------

    @classmethod
    def load(
        cls,
        *sources: Mapping[str, Any] | None,
        defaults: Mapping[str, Any] | None = None,
        file: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        env_prefix: str = ENV_PREFIX,
    ) -> Config:
        """Build a config: ``defaults``, then ``file``, then ``env``, then each of ``sources``.

        ``defaults`` replace the schema's defaults (e.g. a runner that serves
        sockets defaults ``websocket`` to true); everything else overrides them.

        Keys may be given by name (``data_timeout``) or alias (``dataTimeout``).
        An unknown key or a value that does not parse raises :class:`ConfigError`
        naming the key and the expected type.
        """
        values: dict[str, Any] = {}
        if defaults:
            values.update(_normalise(defaults, "defaults"))
        if file is not None:
            values.update(_normalise(_read_file(Path(file)), f"config file {file}"))
        if env is not None:
            values.update(_normalise(from_env(env, env_prefix), "environment"))
        for source in sources:
            if source:
                values.update(_normalise(source, "settings"))
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (parsed and validated like any source)."""
        return dataclasses.replace(self, **_normalise(changes, "settings"))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """What the schema says of one key (used by the CLI and the docs)."""

    name: str
    default: Any
    doc: str
    aliases: tuple[str, ...]
    #: old names still accepted, with a warning (see CHANGELOG.md)
    deprecated: tuple[str, ...] = ()
    #: the annotation in the schema, e.g. ``float`` or ``tuple[str, ...]``
    type: str = "str"
    #: the key of :data:`GROUPS` it is listed under
    group: str = "server"
    #: the placeholder of its value, e.g. ``SECONDS``
    metavar: str = "VALUE"
    #: its flag may be given several times (each value one item)
    repeatable: bool = False

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def schema() -> list[OptionInfo]:
    """Every configuration key, in declaration order."""
    return [
        OptionInfo(
            f.name,
            f.default,
            f.metadata["doc"],
            f.metadata["aliases"],
            deprecated=f.metadata["deprecated"],
            type=str(f.type),
            group=f.metadata["group"],
            metavar=f.metadata["metavar"],
            repeatable=f.metadata["repeatable"],
        )
        for f in dataclasses.fields(Config)
    ]


def option_info(key: str) -> OptionInfo:
    """The schema entry of ``key`` (name, alias, or flag spelling such as ``--data-timeout``).

    Raises :class:`ConfigError` naming the closest key for an unknown one.
    """
    name = key.lstrip("-").replace("-", "_")
    f = _FIELDS.get(name) or _FIELDS.get(key)
    if f is None:
        hint = difflib.get_close_matches(name, list(_FIELDS), n=1)
        remedy = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ConfigError(f"unknown configuration key {key!r}{remedy}")
    (info,) = [i for i in schema() if i.name == f.name]
    return info


def _lookup() -> dict[str, dataclasses.Field[Any]]:
    table: dict[str, dataclasses.Field[Any]] = {}
    for f in dataclasses.fields(Config):
        table[f.name] = f
        for alias in (*f.metadata["aliases"], *f.metadata["deprecated"]):
            table[alias] = f
    return table


_FIELDS: Final = _lookup()
#: The spellings suggested for a mistyped key: names and aliases, not the deprecated ones.
_CURRENT: Final = [key for key, f in _FIELDS.items() if key not in f.metadata["deprecated"]]
_WARNED: set[str] = set()


def _warn_renamed(old: str, new: str) -> None:
    """Log once per process that ``old`` is an old name of ``new`` (CHANGELOG.md says why)."""
    if old not in _WARNED:
        _WARNED.add(old)
        log.warning(
            "configuration key %r is deprecated and will be removed in 1.0; use %r", old, new
        )


def _normalise(source: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in source.items():
        f = _FIELDS.get(key)
        if f is None:
            hint = difflib.get_close_matches(key, list(_CURRENT), n=1)
            remedy = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ConfigError(f"unknown configuration key {key!r} in {where}{remedy}")
        if key in f.metadata["deprecated"]:
            _warn_renamed(key, f.name)
        try:
            value = f.metadata["parse"](raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"configuration key {key!r} in {where}: {exc}") from None
        minimum = f.metadata["minimum"]
        if minimum is not None and value < minimum:
            raise ConfigError(
                f"configuration key {key!r} in {where} must be at least {minimum}, got {value!r}"
            )
        out[f.name] = value
    return out


def from_env(env: Mapping[str, str], prefix: str = ENV_PREFIX) -> dict[str, str]:
    """The settings found in ``env``: ``MONUMENT_WS_DATA_TIMEOUT=5`` → ``{"data_timeout": "5"}``."""
    names = {f.name for f in dataclasses.fields(Config)}
    names.update(old for f in dataclasses.fields(Config) for old in f.metadata["deprecated"])
    found: dict[str, str] = {}
    for var, value in env.items():
        if var.startswith(prefix):
            key = var[len(prefix) :].lower()
            if key in names:
                found[key] = value
    return found


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data: object = tomllib.loads(text.decode()) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold an object of settings")
    section = data.get("monument_ws", data)
    if not isinstance(section, dict):
        raise ConfigError(f"config file {path}: [monument_ws] must be a table")
    return section


def reference_markdown() -> str:
    """The configuration reference table of docs/websockets.md, generated from the schema."""
    rows = [
        "| key | default | environment / flag | aliases | meaning |",
        "|---|---|---|---|---|",
    ]
    for info in schema():
        default = list(info.default) if isinstance(info.default, tuple) else info.default
        aliases = ", ".join(f"`{a}`" for a in info.aliases)
        if info.deprecated:
            old = ", ".join(f"`{a}`" for a in info.deprecated)
            aliases = f"{aliases}; deprecated: {old}" if aliases else f"deprecated: {old}"
        rows.append(
            f"| `{info.name}` | `{json.dumps(default)}` | `{info.env_var}` `{info.flag}` "
            f"| {aliases} | {info.doc} |"
        )
    return "\n".join(rows) + "\n"
