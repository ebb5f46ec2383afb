"""Live data values: a socket that asked ``x:get:y`` keeps receiving later unscoped ``x:set:y``.

Opt-in, per data event: the provider's ``bus.on("x:get:y", live=True/False)`` when it made a
choice, otherwise the ``live_data`` setting (off by default). A socket *watches* ``x:get:y``
once a request for it carried no data (absent or null) and got its answer; from then on every
**unscoped** emit of ``x:set:y`` on the bus (one that names no request: an HTTP handler, a
timer, another socket's handler) is pushed to it as ``{"event": "x:set:y", "data": …}``.
Guarantees:

* **Scoped answers stay private**: an emit naming a request (``request=``) answers that request
  only and is never pushed to a watcher; a request with data never starts a watch.
* **Reply first, then every later value, in emit order**: pushes start after the request's
  answer is queued; an unscoped emit that came between the answer and that point (the answer
  came from another task) is pushed right after the reply -- the latest one only -- and an emit
  that answered the request itself is not pushed again.
* **One watch per socket and event**: asking again while watching sends the reply and nothing
  more; pushes are not doubled.
* **Bounded**: a socket watches at most ``max_live_values`` events; a request that would start
  one more fails with ``rate_limited`` (``ws:unwatch`` one first). Each watch holds at most one
  value (the one missed before its reply). Events without a provider leave nothing behind.
* **Slow and closed sockets**: a push goes through the socket's bounded send path without
  waiting (encoded once for all watchers): a client that does not read is closed with 4008 as
  for any push, and the emitter is never slowed. A socket that closes, or takes no more frames,
  is forgotten (:meth:`LiveValues.forget`, and on the first refused push).
* **Process-local**: the bus is per process, so a watch sees the emits of its own process only.

``ws:unwatch {"event": "x:get:y"}`` ends a watch (reply ``{"watched": <whether one was
there>}``); a new request without data starts it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import protocol
from ..protocol.errors import RateLimited
from ..protocol.frames import ErrorCode, Frame, Invalid, set_event_for
from .stats import OUT_REPLY

if TYPE_CHECKING:
    from ..bus import DataRequest, EventBus
    from .socket import Socket

#: Stands for "no value was missed" in :attr:`Watch.missed`.
_NONE: Any = object()


class Watch:
    """One socket watching one ``x:set:y``: pending until its first answer is queued."""

    __slots__ = ("active", "asking", "missed", "request", "set_event", "socket")

    def __init__(self, socket: Socket, set_event: str) -> None:
        self.socket = socket
        self.set_event = set_event
        #: True once an answer was queued: unscoped emits are pushed from then on
        self.active = False
        #: requests for the event in flight while pending
        self.asking = 0
        #: the latest request for the event while pending (see :meth:`LiveValues.deliver`)
        self.request: DataRequest | None = None
        #: the latest unscoped value emitted after that request's answer, before the reply
        self.missed: Any = _NONE

    def waits(self, request: DataRequest) -> None:
        """The request started waiting on the bus (``EventBus.ask(waits=)``)."""
        self.request = request


class LiveValues:
    """Who watches which live value, by event and by socket; one per server."""

    __slots__ = ("_by_event", "_by_socket", "bus", "enabled", "limit")

    def __init__(self, bus: EventBus, enabled: bool, limit: int) -> None:
        self.bus = bus
        #: the ``live_data`` setting: the choice for providers that made none
        self.enabled = enabled
        #: ``max_live_values``: watches per socket
        self.limit = limit
        self._by_event: dict[str, dict[Socket, Watch]] = {}
        self._by_socket: dict[Socket, dict[str, Watch]] = {}

    def __len__(self) -> int:
        """Watches held now (pending ones included)."""
        return sum(len(watches) for watches in self._by_socket.values())

    @property
    def sockets(self) -> int:
        """Sockets holding at least one watch."""
        return len(self._by_socket)

    def watching(self, socket: Socket) -> list[str]:
        """The ``x:set:y`` events ``socket`` watches (pending ones included)."""
        return list(self._by_socket.get(socket, ()))

    def wanted(self, event: str) -> bool:
        """Whether the data event ``event`` is live (its provider's choice, else the setting)."""
        choice = self.bus.live(event)
        return self.enabled if choice is None else choice

    # --- the dispatcher's side -------------------------------------------------

    def asking(self, socket: Socket, frame: Frame) -> Watch | None:
        """A data request starts: the watch it may start or join (None: it starts none).

        Raises RateLimited when ``socket`` watches ``max_live_values`` events already.
        Nothing may await between this and ``EventBus.ask(waits=watch.waits)``."""
        if frame.data is not None or socket.closed or not self.wanted(frame.event):
            return None
        set_event = set_event_for(frame.event)
        if set_event is None:
            return None
        mine = self._by_socket.get(socket)
        watch = mine.get(set_event) if mine is not None else None
        if watch is None:
            if mine is not None and len(mine) >= self.limit:
                raise RateLimited(
                    f"this socket watches {len(mine)} live values, the most it may "
                    "(max_live_values): ws:unwatch one first"
                )
            watch = Watch(socket, set_event)
            self._by_socket.setdefault(socket, {})[set_event] = watch
            self._by_event.setdefault(set_event, {})[socket] = watch
        elif watch.active:
            return None  # watched already: this request is a plain one
        watch.asking += 1
        return watch

    def answered(self, watch: Watch) -> None:
        """The request's answer is queued: push from now on, the value missed meanwhile first."""
        if watch.active or self._by_event.get(watch.set_event, {}).get(watch.socket) is not watch:
            return  # active already, or unwatched meanwhile
        watch.active = True
        watch.request = None
        missed, watch.missed = watch.missed, _NONE
        if missed is not _NONE:
            self._push(watch, protocol.push(watch.set_event, missed))

    def done(self, watch: Watch) -> None:
        """The request ended (answered or not): a watch that never got an answer goes."""
        watch.asking -= 1
        if watch.asking <= 0 and not watch.active:
            self._drop(watch)

    # --- the bus's side --------------------------------------------------------

    def deliver(self, set_event: str, data: Any) -> None:
        """The bus's tap: an unscoped ``set_event`` was emitted (before it answers requests)."""
        watchers = self._by_event.get(set_event)
        if not watchers:
            return
        frame: bytes | None = None
        for watch in list(watchers.values()):
            if watch.active:
                if frame is None:
                    frame = protocol.push(set_event, data)  # TypeError: logged by the bus
                self._push(watch, frame)
            elif watch.request is not None and watch.request.answered:
                watch.missed = data
            # else: the request still waits, and this very emit answers it

    def _push(self, watch: Watch, frame: bytes) -> None:
        if not watch.socket.send_raw_nowait(frame):
            self._drop(watch)  # closing, or closed as a slow consumer

    # --- ending ----------------------------------------------------------------

    def unwatch(self, socket: Socket, frame: Frame) -> Invalid | None:
        """The inline command ``ws:unwatch {"event": "x:get:y"}``."""
        data = frame.data
        event = data.get("event") if isinstance(data, dict) else None
        set_event = set_event_for(event) if isinstance(event, str) else None
        if set_event is None:
            return Invalid(
                ErrorCode.BAD_FRAME,
                'ws:unwatch takes {"event": "x:get:y"}, a data event',
                frame.id,
            )
        mine = self._by_socket.get(socket)
        watch = mine.get(set_event) if mine is not None else None
        if watch is not None:
            self._drop(watch)
        if frame.id is not None:
            reply = protocol.reply(frame.event, frame.id, {"watched": watch is not None})
            socket.send_raw_nowait(reply, kind=OUT_REPLY)
        return None

    def forget(self, socket: Socket) -> None:
        """``socket`` closed: every watch it held goes."""
        for watch in list(self._by_socket.get(socket, {}).values()):
            self._drop(watch)

    def _drop(self, watch: Watch) -> None:
        mine = self._by_socket.get(watch.socket)
        if mine is not None and mine.get(watch.set_event) is watch:
            del mine[watch.set_event]
            if not mine:
                del self._by_socket[watch.socket]
        watchers = self._by_event.get(watch.set_event)
        if watchers is not None and watchers.get(watch.socket) is watch:
            del watchers[watch.socket]
            if not watchers:
                del self._by_event[watch.set_event]
