"""Which path an incoming application event takes (docs/protocol.md, "How an incoming event is routed").

The :class:`Router` holds the handlers registered for events and decides, for
a valid frame, one :class:`Route`:

* ``DATA`` -- ``x:get:y`` with data handling on: asked on the bus, answered by ``x:set:y``;
* ``HANDLER`` -- a handler registered for the event (in code, or a plug of the
  plugs folder) runs; its value is the reply;
* ``PASSTHROUGH`` -- emitted on the bus with ``message=`` and ``socket=``;
* ``FORBIDDEN`` -- under a reserved prefix or outside the ``socket_events`` allow-list;
* ``UNHANDLED`` -- nothing takes it (``not_found`` with an id, dropped without).
* ``COMMAND`` -- a ``ws:`` command offered by a layer above (channels, presence).

The decision depends only on the mode, the allow-list, the handler table and
whether the bus has receivers; running the route is the connection's job.
"""

from __future__ import annotations

import enum
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..config import WebSocketMode
from ..protocol.frames import set_event_for
from ..signals import RESERVED_PREFIXES

if TYPE_CHECKING:
    from ..bus import EventBus

#: A registered handler, as the router keeps it; the typed signature users write against is
#: :class:`monument_ws.connection.dispatch.Handler` (the router sits below the socket type).
Target = Callable[..., Any]

#: How many event names the router remembers the socket_events verdict of.
_VERDICTS = 1024


class Route(enum.Enum):
    DATA = "data"
    HANDLER = "handler"
    PASSTHROUGH = "passthrough"
    COMMAND = "command"
    FORBIDDEN = "forbidden"
    UNHANDLED = "unhandled"


def compile_patterns(patterns: Iterable[str]) -> re.Pattern[str]:
    """One regular expression matching any of the glob ``patterns``."""
    parts = [fnmatch.translate(p) for p in patterns] or ["(?!)"]
    return re.compile("|".join(f"(?:{p})" for p in parts))


class Router:
    """Event → handler table plus the routing decision."""

    def __init__(
        self,
        mode: WebSocketMode = True,
        socket_events: Iterable[str] = ("*",),
    ) -> None:
        self.mode = mode
        self._allowed = compile_patterns(socket_events)
        #: allowed(event), remembered: the patterns never change after construction
        self._verdicts: dict[str, bool] = {}
        self._handlers: dict[str, Target] = {}
        #: handler -> whether it is a plain function, remembered (see plain())
        self._plain: dict[Target, bool] = {}
        #: The plugs folder's table (event -> handler). Never mutated: a reload
        #: assigns a new mapping, so a lookup sees the old table or the new one,
        #: never half of each. Handlers registered in code win over plugs.
        self.plugs: Mapping[str, Target] = {}

    # --- handlers ---------------------------------------------------------

    def add(self, event: str, fn: Target) -> None:
        if event.startswith(RESERVED_PREFIXES):
            raise ValueError(
                f"cannot register a handler for {event!r}: the prefixes "
                f"{', '.join(RESERVED_PREFIXES)} are reserved"
            )
        if event in self._handlers and self._handlers[event] is not fn:
            raise ValueError(
                f"a handler for {event!r} is already registered "
                f"({self._handlers[event].__qualname__}); remove it first"
            )
        self._handlers[event] = fn

    def remove(self, event: str) -> None:
        self._handlers.pop(event, None)

    def events(self) -> list[str]:
        """The events with a handler registered in code (the plugs folder's are in ``plugs``)."""
        return list(self._handlers)

    def get(self, event: str) -> Target | None:
        handler = self._handlers.get(event)
        return handler if handler is not None else self.plugs.get(event)

    def plain(self, event: str) -> Target | None:
        """The handler of ``event`` if it is a plain function (neither a coroutine function nor
        an async generator function): it can run inline, without a task."""
        handler = self._handlers.get(event)
        if handler is None:
            handler = self.plugs.get(event)
            if handler is None:
                return None
        plain = self._plain.get(handler)
        if plain is None:
            plain = not (
                inspect.iscoroutinefunction(handler) or inspect.isasyncgenfunction(handler)
            )
            if len(self._plain) >= _VERDICTS:  # plugs reloads bring new functions: stay bounded
                self._plain.clear()
            self._plain[handler] = plain
        return handler if plain else None

    # --- routing ----------------------------------------------------------

    def allowed(self, event: str) -> bool:
        """Whether a socket may trigger ``event`` at all."""
        return (
            not event.startswith(RESERVED_PREFIXES) and self._allowed.fullmatch(event) is not None
        )

    def route(self, event: str, bus: EventBus) -> Route:
        allowed = self._verdicts.get(event)
        if allowed is None:
            allowed = self.allowed(event)
            if len(self._verdicts) >= _VERDICTS:  # event names come from clients: stay bounded
                self._verdicts.clear()
            self._verdicts[event] = allowed
        if not allowed:
            return Route.FORBIDDEN
        if self.mode in (True, "data") and set_event_for(event):
            return Route.DATA
        if self.mode == "data":
            return Route.UNHANDLED
        if event in self._handlers or event in self.plugs:
            return Route.HANDLER
        if bus.has_receivers(event):
            return Route.PASSTHROUGH
        return Route.UNHANDLED
