"""The application's event bus, on blinker, shared by HTTP handlers and sockets.

One :class:`EventBus` holds one blinker signal per event name. Receivers are
called as ``receiver(event, **kwargs)``: the first positional argument is the
event name (blinker's *sender*), the keyword arguments are what the emitter
passed -- always ``data``, plus e.g. ``message``/``socket`` for passthrough
events or ``request`` for data events. Write receivers with ``**_`` so new
keywords never break them. Async and plain functions both work.

Data events (monument's ``x:get:y`` answered by ``x:set:y``)::

    @bus.on("data:get:greeting")
    async def greeting(event, *, request, **_):
        return {"hello": "world"}            # answers this request

    @bus.on("data:get:user")
    async def user(event, *, request, data, **_):
        await bus.emit("data:set:user", await load(data["id"]), request=request)

    # an HTTP handler asks the same provider:
    value = await bus.ask("data:get:greeting")

What answers a request: the first non-None value a receiver returns, or an
emit of the matching ``:set:`` event that names the request. An emit of
``:set:`` that names no request answers every waiting request that carried no
``data`` (the same data for everyone, e.g. a cached collection) -- never one
with parameters, so one user's answer cannot reach another user's request.
The pending wait is removed when answered, on timeout and on cancellation
(e.g. when the asking socket closes); nothing is connected to a blinker signal
per request, so receiver lists never grow with traffic.

Live values: a provider registered with ``live=True`` (or any provider, with the
``live_data`` setting on) keeps a socket that asked ``x:get:y`` without data
receiving every later *unscoped* ``x:set:y`` emit (one that names no request)
as a push. The bus only reports those emits to its taps (:meth:`EventBus.tap`),
synchronously and before the waiting requests are answered; who watches what
is the sockets' business (:mod:`monument_ws.connection.live`). A scoped emit
(``request=``) is reported to no tap: it answers one request only.

Receivers registered with :meth:`EventBus.on` are held strongly (unlike
blinker's default), so a receiver defined inside an app factory is not
silently garbage-collected; remove it with :meth:`EventBus.off`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, overload

from blinker import NamedSignal, Namespace

from .protocol.errors import NotFound, Timeout
from .protocol.frames import set_event_for

log = logging.getLogger("monument_ws")

F = TypeVar("F", bound=Callable[..., Any])

#: ``tap(set_event, data)``: told of every unscoped emit of a ``:set:`` event (see EventBus.tap).
Tap = Callable[[str, Any], None]


class DataRequest:
    """One waiting data request. Providers receive it as ``request=`` and name it on ``:set:``."""

    __slots__ = ("_future", "data", "event", "set_event")

    def __init__(self, event: str, set_event: str, data: Any, future: asyncio.Future[Any]) -> None:
        self.event = event
        self.set_event = set_event
        self.data = data
        self._future = future

    @property
    def has_data(self) -> bool:
        """Whether the request carried parameters (``data`` not absent or null)."""
        return self.data is not None

    @property
    def answered(self) -> bool:
        return self._future.done()

    def _answer(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)

    def __repr__(self) -> str:
        state = "answered" if self.answered else "waiting"
        return f"<DataRequest {self.event} {state}>"


def _sync_wrapper(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return call


class EventBus:
    """A named set of blinker signals with monument's emit / on / once / ask."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self._signals = Namespace()
        # set-event -> waiting requests (a dict keeps arrival order)
        self._waiting: dict[str, dict[DataRequest, None]] = {}
        # get-event -> the live choice its provider made (on(..., live=)); set in code only
        self._live: dict[str, bool] = {}
        self._taps: list[Tap] = []

    def __repr__(self) -> str:
        return f"<EventBus {self.name!r}>"

    # --- receivers --------------------------------------------------------

    def signal(self, event: str) -> NamedSignal:
        """The blinker signal for ``event`` (created on first use)."""
        return self._signals.signal(event)

    def signals(self) -> dict[str, NamedSignal]:
        """Every signal created so far, by event name."""
        return dict(self._signals)

    def has_receivers(self, event: str) -> bool:
        # .get, not .signal: a client sending random event names must not create signals.
        signal = self._signals.get(event)
        return bool(signal is not None and signal.receivers)

    @overload
    def on(self, event: str, *, live: bool | None = None) -> Callable[[F], F]: ...

    @overload
    def on(self, event: str, receiver: F, *, live: bool | None = None) -> F: ...

    def on(
        self, event: str, receiver: F | None = None, *, live: bool | None = None
    ) -> F | Callable[[F], F]:
        """Connect ``receiver`` to ``event``; usable as ``@bus.on("event")``. Held strongly.

        ``live`` (data events ``x:get:y`` only): True makes the value live -- a socket
        that asked it without data then receives every later unscoped ``x:set:y`` --
        whatever the ``live_data`` setting says; False never does; None (the default)
        leaves it to the setting. The choice belongs to the event: the last one given
        for it wins, and :meth:`off` keeps it.
        """
        if live is not None:
            if set_event_for(event) is None:
                raise ValueError(f"live= is for data events (x:get:y), not {event!r}")
            self._live[event] = live
        if receiver is None:
            return lambda fn: self.on(event, fn)
        self.signal(event).connect(receiver, weak=False)
        return receiver

    def live(self, event: str) -> bool | None:
        """The ``live=`` choice made for the data event ``event``; None: none was made."""
        return self._live.get(event)

    def tap(self, tap: Tap) -> None:
        """Call ``tap(set_event, data)`` for every unscoped emit of a ``:set:`` event.

        It runs synchronously inside :meth:`emit`, before waiting requests are answered
        and before the receivers, so it must not block; an exception it raises is
        logged, never passed to the emitter. Remove it with :meth:`untap`."""
        self._taps.append(tap)

    def untap(self, tap: Tap) -> None:
        """Stop calling ``tap`` (no error if it was not tapped)."""
        if tap in self._taps:
            self._taps.remove(tap)

    def once(self, event: str, receiver: Callable[..., Any]) -> Callable[..., Any]:
        """Connect ``receiver`` for the next emit of ``event`` only. Returns what to pass to off."""

        async def call_once(sender: str, **kwargs: Any) -> Any:
            self.off(event, call_once)
            result = receiver(sender, **kwargs)
            if isinstance(result, Awaitable):
                result = await result
            return result

        return self.on(event, call_once)

    def off(self, event: str, receiver: Callable[..., Any]) -> None:
        """Disconnect ``receiver`` from ``event`` (no error if it was not connected)."""
        signal = self._signals.get(event)
        if signal is not None:
            signal.disconnect(receiver)

    # --- emitting ---------------------------------------------------------

    async def emit(self, event: str, data: Any = None, /, **kwargs: Any) -> list[Any]:
        """Call every receiver of ``event`` in connection order; return their values.

        Emitting a ``:set:`` event also answers waiting data requests: the one
        passed as ``request=``, or, without ``request``, every waiting request
        that carried no data. A receiver's exception propagates to the emitter.
        An unscoped ``:set:`` emit (no ``request=``) is first reported to the taps.
        """
        if self._taps and ":set:" in event and not isinstance(kwargs.get("request"), DataRequest):
            for tap in list(self._taps):
                try:
                    tap(event, data)
                except Exception:
                    log.exception("a live-value tap failed on %s", event)
        waiting = self._waiting.get(event)
        if waiting:
            request = kwargs.get("request")
            if isinstance(request, DataRequest):
                if request in waiting:
                    request._answer(data)
            else:
                for pending in list(waiting):
                    if not pending.has_data:
                        pending._answer(data)
        signal = self._signals.get(event)
        if signal is None or not signal.receivers:
            return []
        results = await signal.send_async(event, _sync_wrapper=_sync_wrapper, data=data, **kwargs)
        return [value for _, value in results]

    async def ask(
        self,
        event: str,
        data: Any = None,
        /,
        *,
        timeout: float | None = 30.0,
        waits: Callable[[DataRequest], object] | None = None,
        **context: Any,
    ) -> Any:
        """Emit the data event ``event`` (``x:get:y``) and return its ``x:set:y`` answer.

        ``waits(request)`` is called with the :class:`DataRequest` as soon as it waits,
        before any provider runs (a live watcher remembers it, to tell an emit that
        answers it from one that came after its answer).
        Raises :class:`~monument_ws.protocol.errors.NotFound` at once when no receiver
        listens to ``event``, and :class:`~monument_ws.protocol.errors.Timeout` when no
        answer arrives within ``timeout`` seconds (None or 0: wait forever).
        ``context`` (e.g. ``socket=``, ``message=``) is passed to the providers.
        """
        set_event = set_event_for(event)
        if set_event is None:
            raise ValueError(f"{event!r} is not a data event: it has no ':get:'")
        if not self.has_receivers(event):
            raise NotFound(f"no provider for {event!r}")
        request = DataRequest(event, set_event, data, asyncio.get_running_loop().create_future())
        waiting = self._waiting.setdefault(set_event, {})
        waiting[request] = None
        try:
            if waits is not None:
                waits(request)
            async with asyncio.timeout(timeout or None):
                for value in await self.emit(event, data, request=request, **context):
                    if value is not None:
                        request._answer(value)
                        break
                return await request._future
        except TimeoutError:
            raise Timeout(f"no answer to {event!r} within {timeout:g} s") from None
        finally:
            del waiting[request]
            if not waiting:
                del self._waiting[set_event]

    def pending(self) -> int:
        """Data requests waiting for an answer right now."""
        return sum(len(w) for w in self._waiting.values())


#: The module-level bus for monument-style apps (``from monument_ws import events``).
events = EventBus("default")
