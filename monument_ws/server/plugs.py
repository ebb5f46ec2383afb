"""The plugs folder: drop a module in, it handles an event; edit it, the change is live.

**The file is the event.** ``plugs/NAME.py`` handles the event ``NAME`` and
``plugs/chat/send.py`` the event ``chat/send``. Files and folders whose name
starts with ``_`` or ``.`` are not plugs (use them for shared helpers), nor is
``plugs/INIT.py`` (the hooks, below).

**What a plug defines**: ``handle(message, socket)`` -- called with the
request (a :class:`~monument_ws.protocol.Frame`: ``.event``, ``.id``,
``.data``, ``.raw``) and the :class:`~monument_ws.connection.socket.Socket`:

* an **async generator**: each ``yield`` goes to the client in order, as a
  chunk of a streamed reply (``"more": true``, then ``"end": true``);
* a **coroutine** (or plain) function: its return value is the reply.

Yields and return values may be typed (:mod:`monument_ws.protocol.yields`: broadcast,
sync, error, not_found, custom). A module without a callable ``handle``
taking two arguments fails to load, like one with a syntax error.

**Hooks**: ``plugs/INIT.py`` may define ``init(app)``, run once at start
before any plug is imported (connect a database there), and ``shutdown(app)``,
run once after every socket closed. Either may be async. An exception in
``init`` stops the application from starting; ``INIT.py`` is not reloaded.

**Routing guarantees**:

* Events reach files only through the table built by scanning the folder. A
  client's event name is looked up in that table and never joined into a
  path, so ``../secret`` is an unknown event, not a file.
* The request path never imports: every module is imported when the table is
  built (at start, and on each reload).

**Hot reload** (the ``reload`` setting, ``monument-ws run --reload``): after
every batch of changes under the folder, the folder is scanned into a new
table which replaces the old one in one assignment.

* Requests already running finish with the code they started with (their
  function objects hold their own module); requests that start later use the
  new table.
* A module that fails to import (syntax error, exception at import, no
  ``handle``) keeps its previous version; the error is logged and listed in
  the :class:`Report`. A new module that fails is not served.
* New files become events, deleted files stop being events (``not_found``).
* No socket is touched.
* Each reload logs one line (:meth:`Report.summary`): the plugs added, changed and
  removed, and each that failed to load, with its error.
* Unchanged files (same content) are not re-imported. Helper modules that plugs
  import normally are Python modules like any other: they are not reloaded.

Each completed reload increments :attr:`Plugs.generation`, emits
:data:`~monument_ws.signals.PLUGS_RELOADED` on the bus, and wakes
:meth:`Plugs.reloaded` -- wait on those, never on a sleep.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

from .. import protocol
from ..connection.dispatch import Handler
from ..connection.router import Router
from ..protocol.errors import MissingExtra
from ..signals import PLUGS_RELOADED, RESERVED_PREFIXES

if TYPE_CHECKING:
    from ..bus import EventBus

log = logging.getLogger("monument_ws.plugs")

HOOKS_FILE: Final = "INIT.py"

#: How long watchfiles waits for more changes before reporting a batch (ms).
_DEBOUNCE_MS: Final = 50
#: How often the watcher thread wakes up when nothing changes (ms); its first
#: wake-up also tells :meth:`Plugs.start` that the watcher is running.
_IDLE_MS: Final = 300


@dataclass(frozen=True, slots=True)
class Plug:
    """One loaded plug: its event, file, ``handle`` and the digest of the source it came from."""

    event: str
    path: Path
    handle: Handler
    digest: str


@dataclass(frozen=True, slots=True)
class Table:
    """One scan of the folder. Never mutated; a reload builds a new one."""

    plugs: Mapping[str, Plug] = field(default_factory=dict)
    #: relative path -> why it did not load (its previous version, if any, is in ``plugs``)
    errors: Mapping[str, str] = field(default_factory=dict)

    def handlers(self) -> dict[str, Handler]:
        return {event: plug.handle for event, plug in self.plugs.items()}


@dataclass(frozen=True, slots=True)
class Report:
    """What one reload changed."""

    generation: int
    events: tuple[str, ...]
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    errors: Mapping[str, str]

    def summary(self) -> str:
        """One line for the log: each plug added, changed or removed, and each that failed to
        load with its error and whether its previous version still serves."""
        parts = [f"{event}.py added" for event in self.added]
        parts += [f"{event}.py changed" for event in self.changed]
        parts += [f"{event}.py removed" for event in self.removed]
        for relative, error in self.errors.items():
            kept = relative.removesuffix(".py") in self.events
            parts.append(
                f"{relative} failed to load ({error}; "
                f"{'its previous version still serves' if kept else 'not served'})"
            )
        return f"plugs reloaded: {'; '.join(parts) if parts else 'no plug changed'}"


def plug_files(folder: Path) -> Iterator[tuple[str, Path]]:
    """``(event, path)`` of every plug file under ``folder``, in a stable order.

    Symbolic links are not followed out of the folder: a file whose real path
    is outside it is skipped.
    """
    root = folder.resolve()
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
        here = Path(directory)
        for name in sorted(files):
            if not name.endswith(".py") or name.startswith(("_", ".")):
                continue
            path = here / name
            relative = path.relative_to(root)
            if relative.as_posix() == HOOKS_FILE:
                continue
            if not path.resolve().is_relative_to(root):
                log.warning("plug %s links outside the plugs folder; skipped", relative)
                continue
            yield relative.with_suffix("").as_posix(), path


_IGNORED_SUFFIXES: Final = (".pyc", ".pyo", ".swp", ".swx", ".tmp", "~")


def _worth_a_reload(folder: Path, path: str) -> bool:
    """Python files and directories (a file moved into a new folder may come without an event
    of its own); never caches, hidden files or editor droppings."""
    try:
        parts = Path(path).relative_to(folder).parts
    except ValueError:
        return False
    if any(p.startswith(".") or p == "__pycache__" for p in parts) or path.endswith(
        _IGNORED_SUFFIXES
    ):
        return False
    return path.endswith(".py") or Path(path).suffix == ""


def _module_name(path: Path) -> str:
    # One name per file, so sys.modules holds only the live version of each plug.
    return "monument_ws_plug_" + hashlib.sha1(str(path).encode()).hexdigest()[:16]


def _import(path: Path, source: bytes) -> ModuleType:
    """Execute ``source`` as a fresh module; on failure sys.modules keeps the previous one."""
    name = _module_name(path)
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    code = compile(source, str(path), "exec")
    previous = sys.modules.get(name)
    # Registered while it runs: dataclasses and typing look their module up by name.
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        if previous is not None:
            sys.modules[name] = previous
        else:
            sys.modules.pop(name, None)
        raise
    return module


def _handle_of(module: ModuleType, relative: str) -> Handler:
    handle = getattr(module, "handle", None)
    if not callable(handle):
        raise TypeError(f"{relative} defines no handle(message, socket) function")
    try:
        inspect.signature(handle).bind(None, None)
    except TypeError:
        raise TypeError(f"{relative}: handle must take two arguments (message, socket)") from None
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass
    return handle  # type: ignore[no-any-return]


def _check_event(event: str) -> None:
    if not 1 <= len(event) <= protocol.MAX_EVENT_LENGTH:
        raise ValueError(f"an event name has 1 to {protocol.MAX_EVENT_LENGTH} characters")
    if event.startswith(RESERVED_PREFIXES) or protocol.set_event_for(event) is not None:
        raise ValueError(f"{event!r} is reserved (ws:, route:, … and data events x:get:y)")


def scan(folder: Path, previous: Table | None = None) -> Table:
    """Build a table from ``folder``, reusing the modules of ``previous`` whose source is unchanged.

    A module that fails to load keeps its entry from ``previous`` (if any) and
    its error is recorded in :attr:`Table.errors`.
    """
    old = previous.plugs if previous is not None else {}
    plugs: dict[str, Plug] = {}
    errors: dict[str, str] = {}
    if not folder.is_dir():
        return Table(plugs, errors)
    for event, path in plug_files(folder):
        relative = event + ".py"
        try:
            source = path.read_bytes()
        except OSError:
            continue  # deleted while scanning: the next batch of changes rescans
        digest = hashlib.sha256(source).hexdigest()
        known = old.get(event)
        if known is not None and known.digest == digest and known.path == path:
            plugs[event] = known
            continue
        try:
            _check_event(event)
            handle = _handle_of(_import(path, source), relative)
        except Exception as exc:  # any failure of user code: keep the previous version
            errors[relative] = f"{type(exc).__name__}: {exc}"
            log.error(
                "plug %s failed to load (%s); %s",
                relative,
                errors[relative],
                "keeping its previous version" if known is not None else "it is not served",
            )
            if known is not None:
                plugs[event] = known
            continue
        plugs[event] = Plug(event, path, handle, digest)
    for event in old.keys() - plugs.keys():
        sys.modules.pop(_module_name(old[event].path), None)
    return Table(plugs, errors)


class Plugs:
    """The plugs folder of one application, its hooks, and (optionally) its watcher.

    ``reload`` on: a watchfiles watcher reloads the folder after every batch of
    changes. :meth:`reload` reloads by hand (e.g. from an admin route) either way.
    """

    def __init__(self, folder: Path, router: Router, bus: EventBus, *, reload: bool) -> None:
        self.folder = folder
        self.router = router
        self.bus = bus
        self.watching = reload
        self.table = Table()
        #: completed loads: 1 after start, +1 per reload
        self.generation = 0
        self.last_report: Report | None = None
        self._hooks: ModuleType | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._stop = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    @property
    def events(self) -> tuple[str, ...]:
        """The events served now."""
        return tuple(self.table.plugs)

    async def start(self, app: Any) -> None:
        """Run ``INIT.init(app)``, load the folder, then start watching (with ``reload``)."""
        if not self.folder.is_dir():
            if self.watching:
                log.warning("reload is on but the plugs folder %s does not exist", self.folder)
            return
        hooks = self.folder / HOOKS_FILE
        if hooks.is_file():
            self._hooks = _import(hooks, hooks.read_bytes())
            await self._hook("init", app)
        await self.reload()
        log.info("plugs: %d events from %s", len(self.table.plugs), self.folder)
        if self.watching:
            ready = asyncio.get_running_loop().create_future()
            self._watcher = asyncio.get_running_loop().create_task(self._watch(ready))
            await ready  # changes made after start() returns are seen

    async def stop(self, app: Any) -> None:
        """Stop watching, then run ``INIT.shutdown(app)`` (errors are logged)."""
        self._stop.set()
        if self._watcher is not None:
            try:
                await asyncio.wait_for(self._watcher, 5.0)
            except (TimeoutError, asyncio.CancelledError):
                self._watcher.cancel()
            self._watcher = None
        try:
            await self._hook("shutdown", app)
        except Exception:
            log.exception("plugs/INIT.py shutdown() failed")

    async def _hook(self, name: str, app: Any) -> None:
        hook = getattr(self._hooks, name, None)
        if hook is not None:
            result = hook(app)
            if inspect.isawaitable(result):
                await result

    async def reload(self) -> Report:
        """Scan the folder into a new table and swap it in; return what changed."""
        async with self._lock:
            before = self.table
            table = scan(self.folder, before)
            self.table = table
            self.router.plugs = table.handlers()  # the swap: one assignment
            self.generation += 1
            old, new = before.plugs, table.plugs
            report = Report(
                generation=self.generation,
                events=tuple(new),
                added=tuple(e for e in new if e not in old),
                changed=tuple(e for e in new if e in old and new[e] is not old[e]),
                removed=tuple(e for e in old if e not in new),
                errors=dict(table.errors),
            )
            self.last_report = report
            if report.generation > 1:  # the first load is logged by start()
                log.log(logging.WARNING if report.errors else logging.INFO, report.summary())
        async with self._changed:
            self._changed.notify_all()
        try:
            await self.bus.emit(PLUGS_RELOADED, report=report)
        except Exception:
            log.exception("a receiver of %s failed", PLUGS_RELOADED)
        return report

    async def reloaded(self, after: int) -> Report:
        """Wait until a load numbered above ``after`` completed; return the latest report.

        Read :attr:`generation` before changing files, then await this with it.
        """
        async with self._changed:
            await self._changed.wait_for(lambda: self.generation > after)
        assert self.last_report is not None
        return self.last_report

    async def _watch(self, ready: asyncio.Future[None]) -> None:
        try:
            from watchfiles import awatch
        except ImportError:
            ready.set_exception(MissingExtra("reload", "watchfiles", "reload"))
            return
        root = self.folder.resolve()
        try:
            async for changes in awatch(
                root,
                watch_filter=lambda _, path: _worth_a_reload(root, path),
                stop_event=self._stop,
                debounce=_DEBOUNCE_MS,
                step=10,
                rust_timeout=_IDLE_MS,
                yield_on_timeout=True,
            ):
                if not ready.done():
                    ready.set_result(None)
                if changes:
                    try:
                        await self.reload()
                    except Exception:  # keep watching: the next change may fix it
                        log.exception("reloading the plugs folder failed")
        except Exception as exc:
            log.exception("the plugs watcher stopped; plugs are no longer reloaded")
            if not ready.done():
                ready.set_exception(exc)
