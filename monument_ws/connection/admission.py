"""Which requests of one socket run, when, and what ends them.

:class:`Admission` takes each routed request: it refuses what cannot run
(``not_found``, ``forbidden``, ``duplicate_id``, ``rate_limited`` past
``max_inflight`` running and ``max_waiting`` waiting, ``unavailable`` once the
socket drains), runs a plain-function handler inline when a slot is free and
nothing waits, and otherwise starts the request as its own task, eagerly
(:mod:`monument_ws.connection.eager`), or lets it wait for a slot. The
bookkeeping itself, without I/O, is the socket's
:class:`~monument_ws.connection.requests.RequestTable`.

Guarantees: exactly one final answer per request id while the socket lives; a
request that waited starts, in arrival order, when a slot frees; ``ws:cancel``
ends a running or waiting request with ``cancelled``; when the socket closes,
waiting requests are dropped and running ones cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from ..protocol import frames as protocol
from ..protocol.frames import ErrorCode, Frame, Invalid
from . import eager
from .outbound import Outbound
from .requests import DUPLICATE, UNAVAILABLE, Refusal, Request, RequestTable
from .router import Route, Router
from .stats import OUT_REPLY, Stats


class Runner(Protocol):
    """What admission needs of the dispatcher (:class:`~.dispatch.Dispatcher`); ``socket`` is
    the :class:`~monument_ws.Socket` the request came from."""

    @property
    def router(self) -> Router: ...

    @property
    def stats(self) -> Stats: ...

    def run(
        self, socket: Any, frame: Frame, route: Route, request: Request, *returned: Any
    ) -> Coroutine[Any, Any, None]: ...

    def run_plain(self, socket: Any, frame: Frame, handler: Callable[..., Any]) -> None: ...


class Admission:
    """The request lifecycle of one socket."""

    __slots__ = ("_out", "_runner", "_settled", "_socket", "table")

    def __init__(
        self, socket: object, runner: Runner, outbound: Outbound, table: RequestTable
    ) -> None:
        self._socket = socket
        self._runner = runner
        self._out = outbound
        self.table = table
        self._settled: asyncio.Future[None] | None = None  # finish() waits for no request

    def start(self, frame: Frame, route: Route) -> None:
        """Run, queue or refuse one routed request."""
        request_id = frame.id
        if route is Route.FORBIDDEN or route is Route.UNHANDLED:
            if request_id is None:
                self._runner.stats.dropped += 1
            elif route is Route.FORBIDDEN:
                self._out.error_now(
                    ErrorCode.FORBIDDEN, f"sockets may not trigger {frame.event!r}", request_id
                )
            else:
                self._out.error_now(
                    ErrorCode.NOT_FOUND, f"no handler for event {frame.event!r}", request_id
                )
            return
        if route is Route.HANDLER and self.table.free_now(request_id):
            handler = self._runner.router.plain(frame.event)
            if handler is not None:
                self._runner.run_plain(self._socket, frame, handler)
                return
        admitted = self.table.admit(request_id, None)
        if type(admitted) is Refusal:
            self._refused(admitted, frame)
        elif admitted.running:  # type: ignore[union-attr]
            self._launch(admitted, frame, route, eager.start)  # type: ignore[arg-type]
        else:  # it waits for a slot, with the route it was given now
            admitted.job = (frame, route)  # type: ignore[union-attr]

    def carry_on(self, frame: Frame, returned: Any, started: float) -> None:
        """A plain-function handler that ran inline returned something that needs a task (an
        awaitable, a stream, a yield): admit the request now and finish it in one."""
        admitted = self.table.admit(frame.id, None)
        if type(admitted) is Refusal:  # the handler itself began a drain
            close = getattr(returned, "close", None)
            if callable(close):
                close()
            self._refused(admitted, frame)
            return
        # A slot was free before the handler ran, and a plain function cannot take one.
        assert admitted.running  # type: ignore[union-attr]
        self._launch(admitted, frame, Route.HANDLER, eager.start, returned, started)  # type: ignore[arg-type]

    def ended(self, request: Request) -> None:
        """``request``'s task is ending (the dispatcher calls it last): free its slot for the
        next waiting request, or wake :meth:`finish` when none is left."""
        following = self.table.finish(request)
        if following is not None:
            frame, route = following.job
            # A plain task, not an eager one: a line of requests that end without
            # suspending would otherwise start each other recursively.
            self._launch(following, frame, route, asyncio.get_running_loop().create_task)
        elif self._settled is not None and self.table.idle:
            self._settle()

    def cancel(self, frame: Frame) -> Invalid | None:
        """``ws:cancel``: end a running or waiting request with ``cancelled``. Returns the
        refusal of a malformed command, for the reader to count as a bad frame."""
        target = frame.data.get("id") if isinstance(frame.data, dict) else None
        if target is None or protocol.check_id(target) is not None:
            return Invalid(
                ErrorCode.BAD_FRAME, "ws:cancel needs data {'id': <request id>}", frame.id
            )
        request = self.table.cancel(target)
        if request is None:
            if frame.id is not None:
                self._out.error_now(
                    ErrorCode.NOT_FOUND, f"no running request with id {target!r}", frame.id
                )
            return None
        task = request.task
        if task is not None:
            task.cancel()
            # A task cancelled before its first step never runs its coroutine (nor the
            # dispatcher's call to ended()): free the slot when it is done, whichever way.
            task.add_done_callback(lambda _: self.ended(request))
        self._out.error_now(ErrorCode.CANCELLED, "cancelled by the client", target)
        if frame.id is not None:
            self._out.offer(protocol.reply(frame.event, frame.id, {}), kind=OUT_REPLY)
        return None

    async def finish(self, grace: float) -> None:
        """Stop taking requests and wait up to ``grace`` seconds for the running ones to end."""
        table = self.table
        table.stop()
        if table.idle:
            return
        if self._settled is None:
            self._settled = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(self._settled)

    async def close(self) -> None:
        """The socket is gone: forget waiting requests, cancel running ones and wait for them."""
        tasks = [request.task for request in self.table.close() if request.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._settle()

    def _settle(self) -> None:
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)

    def _refused(self, refusal: Refusal, frame: Frame) -> None:
        request_id = frame.id
        if refusal is DUPLICATE:
            self._out.error_now(
                ErrorCode.DUPLICATE_ID,
                f"a request with id {request_id!r} is still running",
                request_id,
            )
        elif request_id is None:
            self._runner.stats.dropped += 1
        elif refusal is UNAVAILABLE:
            self._out.error_now(
                ErrorCode.UNAVAILABLE, "the server is shutting down; reconnect", request_id
            )
        else:
            table = self.table
            self._out.error_now(
                ErrorCode.RATE_LIMITED,
                f"{table.max_running} requests running and "
                f"{table.max_waiting} waiting on this socket",
                request_id,
            )

    def _launch(
        self,
        request: Request,
        frame: Frame,
        route: Route,
        start: Callable[[Coroutine[Any, Any, None]], asyncio.Task[None]],
        *returned: Any,
    ) -> None:
        task = start(self._runner.run(self._socket, frame, route, request, *returned))
        if not task.done():  # done: it ran to its end without suspending (eager start)
            request.task = task
