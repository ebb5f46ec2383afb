"""Running one admitted request: its route, the handler, data events, streams, typed yields.

One :class:`Dispatcher` serves every socket of a server (it holds no
per-socket state, so an idle socket costs nothing here). The socket decides
*whether* a request runs (its :class:`~monument_ws.connection.requests.RequestTable`)
and *when* (its task, or inline for a plain-function handler); the dispatcher
decides *what* runs and turns the result into frames, which it hands back to
the socket's answer and send methods.

* A handler's return value, or each item of an async generator, is the reply;
  an exception becomes an error frame (``internal`` with a generic message for
  anything not a :class:`~monument_ws.protocol.errors.MonumentWSError`; the traceback
  goes to the server log only).
* Streams: each chunk waits until the socket's send buffer has drained, so a
  fast generator is slowed to the client's pace instead of getting the socket
  closed as a slow consumer; every ``_STREAM_YIELD_EVERY`` chunks the stream
  hands the loop over anyway, so a generator that never awaits cannot starve
  other sockets. An ERROR or NOT_FOUND yield is the request's final answer
  and closes the generator.
* SYNC yields are computed from the socket's remembered objects and queued
  with no await in between, so one socket's patches arrive in the order they
  were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from types import CoroutineType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson

from .. import protocol
from ..protocol.errors import MonumentWSError, NotFound
from ..protocol.frames import ErrorCode, Frame
from ..protocol.yields import Yield, YieldType
from .router import Route, Router, Target
from .stats import OUT_REPLY

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..config import Config
    from .commands import Commands
    from .live import LiveValues
    from .middleware import Middleware
    from .requests import Request
    from .socket import Socket
    from .stats import Histogram, Stats

#: Chunks a stream sends before it hands the event loop over, even when none had to wait.
_STREAM_YIELD_EVERY = 64

#: Stands for "the handler has not been called yet" in :meth:`Dispatcher.run`.
_NOTHING: Any = object()

#: Types a handler's value is answered with at once, without asking whether it is awaitable.
_PLAIN_VALUES = frozenset({dict, list, str, int, float, bool, type(None), tuple})


class Handler(Protocol):
    """What ``@ws.handler(event)`` registers and a plug's ``handle`` is: called as
    ``handler(message, socket)`` with the request's :class:`~monument_ws.Frame` and the
    :class:`~monument_ws.Socket` it came from.

    A coroutine function's return value is the reply; an async generator function's
    yields are the chunks of a streamed reply; a plain function's return value is the
    reply too, and it runs inline, before the socket's next frame is read (see
    :meth:`Dispatcher.run_plain`). Any of them may return or yield the typed values of
    :mod:`monument_ws.yields`.
    """

    def __call__(self, message: Frame, socket: Socket, /) -> Any: ...


#: A handler type kept through a decorator: ``@ws.handler("echo")`` returns the function as is.
H = TypeVar("H", bound=Handler)

#: Sends a BROADCAST yield: ``await fanout(event, data, channel, exclude)`` (channel None: every
#: socket; exclude: the client id left out, or None).
Fanout = Callable[[str, Any, "str | None", "str | None"], Awaitable[None]]


class Dispatcher:
    """What every socket of one server shares: settings, bus, handlers, commands, counters."""

    __slots__ = (
        "_latency",
        "bus",
        "commands",
        "config",
        "fanout",
        "live",
        "middleware",
        "router",
        "stats",
    )

    def __init__(
        self,
        config: Config,
        bus: EventBus,
        router: Router,
        stats: Stats,
        commands: Commands,
        middleware: Middleware | None = None,
        fanout: Fanout | None = None,
        live: LiveValues | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.router = router
        self.stats = stats
        self.commands = commands
        self.middleware = middleware
        self.fanout = fanout
        #: who watches which live data value (None: no data event is ever live)
        self.live = live
        # The stats' histogram of each route, found once: no lookup by name per request.
        self._latency: dict[Route, Histogram] = {}

    async def run(
        self,
        socket: Socket,
        frame: Frame,
        route: Route,
        request: Request,
        returned: Any = _NOTHING,
        started: float | None = None,
    ) -> None:
        """Run ``request`` to its one final answer, then tell the socket it ended (which frees
        its slot). This coroutine is the request's task; it never raises but CancelledError.

        ``returned``: what a plain-function handler already returned inline (see
        :meth:`run_plain`) when it needs a task to finish (an awaitable, a stream, a yield).
        """
        request_id = frame.id
        if started is None:
            started = time.perf_counter()
        try:
            if route is Route.HANDLER:
                if returned is _NOTHING:
                    returned = self._call_handler(socket, frame)
                await self._handler_result(socket, frame, request, returned)
            elif route is Route.DATA:
                await self._data(socket, frame, request)
            elif route is Route.COMMAND:
                result = await self.commands.requests[frame.event](socket, frame)
                if request_id is not None:
                    await socket.outbound.answer(
                        request, protocol.reply(frame.event, request_id, result)
                    )
            else:
                values = await self.bus.emit(
                    frame.event, frame.data, message=frame.raw, socket=socket
                )
                if request_id is not None:
                    value = next((v for v in values if v is not None), None)
                    await socket.outbound.answer(
                        request, protocol.reply(frame.event, request_id, value)
                    )
        except MonumentWSError as exc:
            await socket.outbound.fail(request, exc.code, exc.message)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is None or task.cancelling():  # the request was cancelled: no answer due
                raise
            # A CancelledError nobody asked this task for (the handler awaited something
            # cancelled): a failure like any other, or the request would go unanswered.
            socket.log.exception("handler for %r failed", frame.event)
            await socket.outbound.fail(request, ErrorCode.INTERNAL, "internal error")
        except Exception as exc:
            socket.log.exception("handler for %r failed", frame.event)
            if isinstance(exc, orjson.JSONEncodeError):  # JSON cannot hold what it answered
                socket.outbound.failed("encoding", exc)
            await socket.outbound.fail(request, ErrorCode.INTERNAL, "internal error")
        finally:
            self._observe(route, started)
            socket.admission.ended(request)

    async def _data(self, socket: Socket, frame: Frame, request: Request) -> None:
        """Ask the bus for a data event and answer with its ``x:set:y``; a live value goes on
        being pushed after the answer (see :mod:`monument_ws.connection.live`)."""
        live = self.live
        watch = live.asking(socket, frame) if live is not None else None
        try:
            value = await self.bus.ask(
                frame.event,
                frame.data,
                timeout=self.config.data_timeout,
                waits=watch.waits if watch is not None else None,
                message=frame.raw,
                socket=socket,
            )
            set_event = protocol.set_event_for(frame.event)
            assert set_event is not None
            # Data events are answered even without an id, as monument did.
            await socket.outbound.answer(request, protocol.reply(set_event, frame.id, value))
            if watch is not None and live is not None:
                live.answered(watch)
        finally:
            if watch is not None and live is not None:
                live.done(watch)

    def run_plain(self, socket: Socket, frame: Frame, handler: Target) -> None:
        """Run a plain-function handler now, inside the reader's step, in a copy of the
        socket's context; the socket checked that the request may start at once.

        Its value is answered at once, its exception becomes the error frame, as
        in :meth:`run`. Nothing else runs on this socket meanwhile, so the one
        answer per id holds without admitting the request. If it returned
        something that needs a task (an awaitable, an async generator, a
        :class:`~monument_ws.protocol.yields.Yield`), the socket admits it and :meth:`run`
        finishes it.
        """
        started = time.perf_counter()
        request_id = frame.id
        try:
            result = contextvars.copy_context().run(handler, frame, socket)
            if type(result) not in _PLAIN_VALUES and (
                isinstance(result, Yield)
                or inspect.isawaitable(result)
                or inspect.isasyncgen(result)
            ):
                socket.admission.carry_on(frame, result, started)
                return
            if request_id is not None:
                socket.outbound.offer(
                    protocol.reply(frame.event, request_id, result), None, OUT_REPLY
                )
        except MonumentWSError as exc:
            socket.outbound.fail_now(exc.code, exc.message, request_id)
        except (Exception, asyncio.CancelledError) as exc:  # a plain function: nothing to cancel
            socket.log.exception("handler for %r failed", frame.event)
            if isinstance(exc, orjson.JSONEncodeError):  # JSON cannot hold what it answered
                socket.outbound.failed("encoding", exc)
            socket.outbound.fail_now(ErrorCode.INTERNAL, "internal error", request_id)
        self._observe(Route.HANDLER, started)

    def _observe(self, route: Route, started: float) -> None:
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = self.stats.route_latency(route.value)
        histogram.observe(time.perf_counter() - started)

    def _call_handler(self, socket: Socket, frame: Frame) -> Any:
        handler = self.router.get(frame.event)
        if handler is None:  # removed (e.g. by a hot reload) after routing
            raise NotFound(f"no handler for event {frame.event!r}")
        return handler(frame, socket)

    async def _handler_result(
        self, socket: Socket, frame: Frame, request: Request, result: Any
    ) -> None:
        """Await, stream or deliver what a handler returned, as the request's answer."""
        if type(result) is not CoroutineType:
            if inspect.isasyncgen(result):
                await self._stream(socket, frame, request, result)
                return
            if inspect.isawaitable(result):
                result = await result
        else:
            result = await result
        if isinstance(result, Yield):
            await self._deliver(socket, frame, request, result, final=True)
        elif frame.id is not None:
            # The common case, a plain value answering an id, without _deliver's generality.
            await socket.outbound.answer(request, protocol.reply(frame.event, frame.id, result))

    async def _stream(
        self, socket: Socket, frame: Frame, request: Request, items: AsyncIterator[Any]
    ) -> None:
        """Send each item as a chunk, then ``end`` (see the module's guarantees)."""
        chunks = 0
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for item in items:
                if not await self._deliver(socket, frame, request, item, final=False):
                    return
                if socket.sender.busy:
                    await socket.drain()
                chunks += 1
                if chunks == _STREAM_YIELD_EVERY:
                    chunks = 0
                    await asyncio.sleep(0)
        if frame.id is not None:
            await socket.outbound.answer(request, protocol.end(frame.event, frame.id))

    async def _deliver(
        self, socket: Socket, frame: Frame, request: Request, item: Any, *, final: bool
    ) -> bool:
        """Send one value a handler yielded, or returned (``final``); False: stop it."""
        if request.answered:
            return False
        kind = item.type if isinstance(item, Yield) else YieldType.MESSAGE
        if kind is YieldType.ERROR or kind is YieldType.NOT_FOUND:
            await socket.outbound.fail(request, item.code, item.message)
            return False
        if kind is YieldType.BROADCAST:
            if self.fanout is None:
                raise RuntimeError("broadcast yields need a socket served by monument_ws.setup()")
            exclude = socket.client_id if item.exclude_sender else None
            await self.fanout(item.event or frame.event, item.data, item.channel, exclude)
            if final and frame.id is not None:
                await socket.outbound.answer(request, protocol.reply(frame.event, frame.id, None))
            return True
        event = frame.event
        body: dict[str, Any]
        if isinstance(item, Yield):
            event = item.event or frame.event
            if kind is YieldType.SYNC:
                mode, data = socket.sync_state().frame_data(event, item.data)
                body = {"sync": mode, "data": data}
            elif kind.is_custom:
                body = {"type": kind.value, "data": item.data}
            else:
                body = {"data": item.data}
        else:
            body = {"data": item}
        if frame.id is None or event != frame.event:
            sent = await socket.outbound.send(protocol.encode({"event": event, **body}))
            if final and frame.id is not None:  # the request still gets its one answer
                return await socket.outbound.answer(
                    request, protocol.reply(frame.event, frame.id, None)
                )
            return sent
        if final:
            return await socket.outbound.answer(
                request, protocol.encode({"event": event, "id": frame.id, **body})
            )
        return await socket.outbound.send(
            protocol.encode({"event": event, "id": frame.id, **body, "more": True})
        )
