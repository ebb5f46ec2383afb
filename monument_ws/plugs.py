"""The plugs folder: drop a module in, it handles an event; edit it, the change is live.

``plugs/NAME.py`` handles the event ``NAME``; ``plugs/chat/send.py`` the event
``chat/send``. The module defines ``handle(message, socket)``:

* a coroutine (or plain) function: its return value is the reply;
* an async generator: each yield is sent to the client in order. A plain
  value is a chunk of the reply (a push when the request had no id); the
  typed yields below do more.

``plugs/INIT.py`` may define ``async def init(app)``, run once at start before
any plug loads (e.g. connect a database), and ``async def shutdown(app)``.
Files and folders starting with ``_`` or ``.`` are ignored.

Typed yields and their frames:

============================  =======================================================
``broadcast(data, ...)``      ``{"event", "data"}`` to every socket (but the sender,
                              unless ``include_sender``), or a channel publication
``sync(obj)``                 ``{"event", "sync": "full"|"patch", "data"}`` (RFC 6902)
``error(code, message)``      ``ws:error`` with that code; ends the reply
``not_found(message)``        ``ws:error`` ``not_found``; ends the reply
``custom(n, data)``           ``{"event", "type": "custom_<n>", "data"}``, n = 1..5
============================  =======================================================

Hot reload (``reload`` setting, ``--reload``): on a change the folder is
scanned into a new table that replaces the old one in one assignment.
Requests already running finish with the code they started with; a module
that fails to import keeps its previous version (the error is logged and
reported); new and deleted files take effect; no socket is touched. Events
reach files only through that table -- a client's event name is never joined
into a path, so ``../`` leads nowhere. Requests never import: they use the
current table.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from .protocol import ErrorCode

log = logging.getLogger("monument_ws.plugs")

HOOKS_FILE: Final = "INIT.py"


class Kind(enum.Enum):
    """serverless-sockets' yield types."""

    MESSAGE = "message"
    BROADCAST = "broadcast"
    SYNC = "sync"
    ERROR = "error"
    NOT_FOUND = "not_found"
    CUSTOM = "custom"


@dataclass(frozen=True, slots=True)
class Yield:
    """A typed yield; build it with the helpers below."""

    kind: Kind
    data: Any = None
    event: str | None = None
    channel: str | None = None
    include_sender: bool = False
    code: ErrorCode = ErrorCode.INTERNAL
    number: int = 0


def broadcast(
    data: Any, *, event: str | None = None, channel: str | None = None, include_sender: bool = False
) -> Yield:
    """To every socket on every process (not the sender, by default), or publish to ``channel``."""
    return Yield(Kind.BROADCAST, data, event, channel, include_sender)


def sync(obj: Any, *, event: str | None = None) -> Yield:
    """Send ``obj`` as a SYNC: the whole object first, then only JSON Patches of changes."""
    return Yield(Kind.SYNC, obj, event)


def error(code: ErrorCode | str, message: str) -> Yield:
    """End the reply with an error frame of ``code``."""
    return Yield(Kind.ERROR, message, code=ErrorCode(code))


def not_found(message: str = "not found") -> Yield:
    """End the reply with a ``not_found`` error (serverless-sockets' NOT_FOUND)."""
    return Yield(Kind.NOT_FOUND, message, code=ErrorCode.NOT_FOUND)


def custom(number: int, data: Any, *, event: str | None = None) -> Yield:
    """A frame with ``"type": "custom_<number>"`` (1..5) for the client to interpret."""
    if not 1 <= number <= 5:
        raise ValueError("custom yields are numbered 1 to 5")
    return Yield(Kind.CUSTOM, data, event, number=number)


@dataclass(frozen=True, slots=True)
class Plug:
    event: str
    path: Path
    handle: Callable[..., Any]
    stamp: tuple[float, int]  # mtime, size: unchanged files are not re-imported


@dataclass(frozen=True, slots=True)
class Table:
    """One scan of the folder: event → plug. Never mutated; replaced whole on reload."""

    plugs: Mapping[str, Plug] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)  # relative path → error text


def event_of(folder: Path, path: Path) -> str:
    return path.relative_to(folder).with_suffix("").as_posix()


def _import(path: Path, folder: Path) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"monument_plugs_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    # Imports between plugs resolve from the plugs folder.
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    finally:
        if added:
            sys.path.remove(str(folder))
    return module


def scan(folder: Path, previous: Table | None = None) -> Table:
    """Build a table from ``folder``, reusing unchanged modules of ``previous``.

    A module that fails to import keeps its entry from ``previous`` (if any)
    and its error is recorded.
    """
    old = previous.plugs if previous is not None else {}
    plugs: dict[str, Plug] = {}
    errors: dict[str, str] = {}
    if not folder.is_dir():
        return Table(plugs, errors)
    for path in sorted(folder.rglob("*.py")):
        relative = path.relative_to(folder)
        if (
            any(part.startswith(("_", ".")) for part in relative.parts)
            or relative.as_posix() == HOOKS_FILE
        ):
            continue
        event = event_of(folder, path)
        try:
            stat = path.stat()
        except OSError:
            continue
        stamp = (stat.st_mtime, stat.st_size)
        known = old.get(event)
        if known is not None and known.stamp == stamp and known.path == path:
            plugs[event] = known
            continue
        try:
            module = _import(path, folder)
            handle = getattr(module, "handle", None)
            if not callable(handle):
                raise TypeError(f"{relative} defines no handle(message, socket) function")
        except Exception as exc:
            errors[relative.as_posix()] = f"{type(exc).__name__}: {exc}"
            log.error(
                "plug %s failed to load; %s: %s",
                relative,
                "keeping the previous version" if known else "it is not served",
                errors[relative.as_posix()],
            )
            if known is not None:
                plugs[event] = known
            continue
        plugs[event] = Plug(event, path, handle, stamp)
    return Table(plugs, errors)


class Hooks:
    """``plugs/INIT.py``: ``init(app)`` before the plugs load, ``shutdown(app)`` at the end."""

    def __init__(self, folder: Path) -> None:
        self.module: ModuleType | None = None
        path = folder / HOOKS_FILE
        if path.is_file():
            self.module = _import(path, folder)

    async def run(self, name: str, app: Any) -> None:
        hook = getattr(self.module, name, None) if self.module is not None else None
        if hook is None:
            return
        result = hook(app)
        if inspect.isawaitable(result):
            await result


async def watch(
    folder: Path, on_change: Callable[[], Awaitable[None]], stop: asyncio.Event
) -> None:
    """Call ``on_change`` after every batch of file changes under ``folder`` (watchfiles)."""
    try:
        from watchfiles import awatch
    except ImportError:  # pragma: no cover - depends on the extra
        log.error("hot reload needs watchfiles: pip install 'monument-ws[reload]'")
        return
    async for _ in awatch(folder, stop_event=stop, debounce=50, step=20):
        await on_change()
