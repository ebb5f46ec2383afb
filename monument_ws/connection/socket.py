"""One client connection: the reader, and the shell that ties the socket's parts together.

A :class:`Socket` owns three small parts and shares two with every other socket:

* its :class:`~monument_ws.connection.sender.Sender`, the one bounded send path (every
  frame to this client goes through it; its docstring states the bound);
* its :class:`~monument_ws.connection.requests.RequestTable`: slots, ids, and exactly
  one answer per request, without I/O;
* its :class:`~monument_ws.connection.limits.FloodGuard`: the frame rate limit;
* the server's :class:`~monument_ws.connection.dispatch.Dispatcher` (what a request runs)
  and :class:`~monument_ws.connection.commands.Commands` (the ``ws:`` commands).

The socket itself only reads frames, decides per frame which part takes it,
starts and ends requests, and closes. A request runs as its own task, started
eagerly (:mod:`monument_ws.connection.eager`); one whose handler is a plain function runs
inline instead, when a slot is free and nothing waits. Its guarantees:

* **Exactly one final answer per request id** while the socket lives: a reply,
  the end of a stream, or an error. A second request with an id still in
  flight gets ``duplicate_id`` and the first is unaffected.
* **Bad input never raises**: a refused frame gets a ``ws:error`` frame and
  the socket stays open, until ``max_bad_frames`` bad frames in a row close it
  with 1008. A text frame that is not UTF-8 closes it with 1007. A handler's
  unexpected exception becomes ``internal`` with a generic message; the
  traceback goes to the server log only.
* **Floods end**: frames above ``rate_limit`` are refused with
  ``rate_limited``; a socket that goes on for ``rate_burst`` more refusals in
  one flooding episode is closed with 4029 (see :class:`~monument_ws.connection.limits.FloodGuard`),
  and the episode is logged once.
* **Bounded memory**: at most ``max_inflight`` requests run at once, at most
  ``max_queued`` more wait (beyond: ``rate_limited``), and the send path holds
  at most ``send_queue_limit`` frames and ``send_queue_bytes`` bytes; a client
  that does not read is closed with 4008, so it never holds the server's
  memory or slows anyone else. :meth:`Socket.send` waits instead while the
  queue is more than half full, so application code that awaits it is slowed
  down, not disconnected.
* **Draining answers everything**: after :meth:`Socket.finish` the reader goes
  on reading, every new request is refused with ``unavailable`` and running
  ones finish; the socket closes as soon as none runs (or after the grace).
  Every request read before the close frame is written gets its answer.
* **Nothing outlives the socket**: when it closes, waiting requests are
  dropped, server → client calls fail with ConnectionLost, running handlers are
  cancelled (async generators get ``aclose()``), queued frames are dropped,
  and the socket leaves the registry, so it can be garbage-collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .. import protocol
from ..channels.kick import truncate
from ..channels.peer_queues import PeerQueues, Queued
from ..protocol.errors import ConnectionLost, Timeout, from_error_frame
from ..protocol.frames import CloseCode, ErrorCode, Frame, Invalid
from ..protocol.patches import SyncState
from . import eager, reads
from . import reader as aiohttp_reader
from .auth import AUTHENTICATED, Session
from .calls import PendingCalls
from .commands import InlineCommand
from .limits import FloodGuard, Verdict
from .requests import DUPLICATE, UNAVAILABLE, Refusal, Request, RequestTable
from .router import Route
from .sender import Sender
from .stats import (
    IN_COMMAND,
    IN_EVENT,
    IN_INVALID,
    IN_REFUSED,
    OUT_ERROR,
    OUT_PUSH,
    OUT_REPLY,
)

if TYPE_CHECKING:
    from .dispatch import Dispatcher

log = logging.getLogger("monument_ws")

#: What a socket may send before it is authenticated (with require_auth).
_BEFORE_AUTH = frozenset(name for name, command in protocol.COMMANDS.items() if command.before_auth)

#: Seconds a slow consumer's close handshake may take before the connection is aborted.
_SLOW_CLOSE_GRACE = 2.0

#: Seconds a closing socket waits for its queued frames to be written before it closes anyway.
_CLOSE_DRAIN = 5.0

#: Why the reader stops: the close code and reason it closes with.
_Close = tuple[int, str]


class _SocketLog(logging.LoggerAdapter[logging.Logger]):
    """Adds ``socket_id`` and ``client_id`` to every record, so one connection's story can be
    grepped (:mod:`monument_ws.server.logs` formats them, as text or JSON). Explicit, not taken from
    the context: these lines are also written from other sockets' tasks (e.g. fan-out)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = self.extra
        return msg, kwargs


class Socket:
    """One WebSocket client. Handlers receive it as ``socket``.

    ``id`` is unique per connection; ``client_id`` is the server-issued
    identity that survives reconnects made with the ``resume`` secret.
    ``request`` is the aiohttp upgrade request (headers, cookies, query) and
    ``state`` a dict for the application's per-socket data.
    """

    __slots__ = (
        "__weakref__",
        "_bad_in_a_row",
        "_calls",
        "_closer",
        "_closing",
        "_dispatch",
        "_guard",
        "_log",
        "_sender",
        "_settled",
        "_sync",
        "_table",
        "_ws",
        "client_id",
        "frames_in",
        "id",
        "ip",
        "queues",
        "request",
        "resumed",
        "session",
        "stage",
        "state",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        client_id: str,
        resumed: bool,
        dispatch: Dispatcher,
        ip: str = "unknown",
        queues: PeerQueues | None = None,
    ) -> None:
        config = dispatch.config
        self.id = secrets.token_hex(6)
        self.client_id = client_id
        self.resumed = resumed
        self.request = request
        self.state: dict[str, Any] = {}
        self._ws = ws
        self._dispatch = dispatch
        self._log: _SocketLog | None = None  # made on first use: most sockets never log
        transport = request.transport
        reads.small_reads(transport)
        self._sender = Sender(
            transport,
            request.writer,
            max_frames=config.send_queue_limit,
            max_bytes=config.send_queue_bytes,
            stats=dispatch.stats,
            # deflate state lives in aiohttp's writer: with compression every frame goes there
            write_frame=functools.partial(ws.send_frame, opcode=WSMsgType.TEXT)
            if config.compression
            else None,
        )
        self._table = RequestTable(config.max_inflight, config.max_queued)
        self._guard = (
            FloodGuard(config.rate_limit, config.rate_burst, time.monotonic)
            if config.rate_limit
            else None
        )
        self._calls = PendingCalls()
        self._closing = False  # closing: no new requests, the close follows
        self._closer: asyncio.Task[None] | None = None
        self._settled: asyncio.Future[None] | None = None  # finish() waits for no request
        self._sync: SyncState | None = None  # created by the first SYNC yield
        self._bad_in_a_row = 0
        #: frames received: any frame is a sign of life (presence reads it)
        self.frames_in = 0
        #: who this socket is (set by the plugin from the session parser or ws:auth)
        self.session = Session()
        #: "authenticated" once a session parser or ws:auth said so, else "anonymous" or an auth stage
        self.stage = "anonymous"
        self.ip = ip
        #: the peer queues; see enqueue() and consume()
        self.queues = queues

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Socket {self.id} client={self.client_id} {state}>"

    @property
    def closed(self) -> bool:
        return self._closing or self._ws.closed

    @property
    def close_code(self) -> int | None:
        return self._ws.close_code

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The server log, with this socket's ``socket_id`` and ``client_id`` on every record."""
        if self._log is None:
            self._log = _SocketLog(log, {"socket_id": self.id, "client_id": self.client_id})
        return self._log

    @property
    def running(self) -> int:
        """Requests running right now (with or without an id); at most ``max_inflight``."""
        return self._table.running

    @property
    def queued(self) -> int:
        """Requests waiting for a free slot; at most ``max_queued``."""
        return self._table.waiting

    @property
    def pending_calls(self) -> int:
        """Server → client calls waiting for the client's answer."""
        return len(self._calls)

    @property
    def sender(self) -> Sender:
        """The send path (its counters show the most it ever held)."""
        return self._sender

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting in the send queue now."""
        return self._sender.queued_bytes

    @property
    def queue_peak_bytes(self) -> int:
        return self._sender.peak_bytes

    @property
    def queue_peak_frames(self) -> int:
        return self._sender.peak_frames

    def sync_state(self) -> SyncState:
        """The SYNC objects this client holds (made by the first SYNC yield)."""
        if self._sync is None:
            self._sync = SyncState(self._dispatch.config.sync_memory)
        return self._sync

    async def call(self, event: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Call the client: send ``{"event", "call": n, "data"}`` and return its ``ws:result``.

        ``timeout`` defaults to the ``call_timeout`` setting (0 or None there:
        wait forever). Raises :class:`~monument_ws.protocol.errors.Timeout` when no
        answer comes in time, :class:`~monument_ws.protocol.errors.ConnectionLost` when
        the socket closes first, and the typed error the client answered with
        ``ws:error`` (e.g. NotFound when it performs no such event).
        """
        if timeout is None:
            timeout = self._dispatch.config.call_timeout
        if self.closed:
            raise ConnectionLost("the socket is closed")
        number, answer = self._calls.open()
        try:
            frame = protocol.encode({"event": event, "call": number, "data": data})
            if not await self.send_raw(frame):
                raise ConnectionLost("the socket is closed")
            async with asyncio.timeout(timeout or None):
                return await answer
        except TimeoutError:
            raise Timeout(f"the client did not answer {event!r} within {timeout:g} s") from None
        finally:
            self._calls.discard(number)

    # --- peer queue ---------------------------------------------------------

    def _peer_queues(self) -> PeerQueues:
        if self.queues is None:
            raise RuntimeError("this socket has no peer queues: it was not made by setup()")
        return self.queues

    async def enqueue(self, data: Any) -> int:
        """Queue ``data`` for this client (it waits for ``client.consume()``); returns its seq.

        Kept in the broker for ``queue_ttl`` seconds, so it also reaches the
        client after a reconnect to another process; see :mod:`monument_ws.channels.peer_queues`.
        """
        return await self._peer_queues().enqueue(self.client_id, data)

    async def consume(self, accept: Callable[[Any], bool] | None = None) -> Queued | None:
        """Take the oldest message this client enqueued (``ws:enqueue``) that ``accept``
        accepts; None when there is none. Works on any process the client is connected to."""
        return await self._peer_queues().consume(self.client_id, accept)

    async def enqueued(self) -> int:
        """How many messages this client enqueued are waiting to be consumed."""
        return await self._peer_queues().pending(self.client_id)

    # --- sending ----------------------------------------------------------

    async def send(self, event: str, data: Any = None) -> bool:
        """Push ``{"event", "data"}`` to this client; at most once, not recoverable.

        Waits while the send queue is more than half full (backpressure).
        Returns False, without raising, once the socket takes no more frames
        (closed, or closed as a slow consumer); a socket that is closing
        gracefully still takes frames until its close frame is written.
        """
        return await self.send_raw(protocol.push(event, data))

    def send_nowait(self, event: str, data: Any = None) -> bool:
        """Like :meth:`send` without waiting; a full queue closes the socket with 4008."""
        return self.send_raw_nowait(protocol.push(event, data))

    async def send_raw(self, frame: bytes, kind: int = OUT_PUSH) -> bool:
        """Send an already encoded text frame, waiting while the queue is over half full.

        ``kind`` (a ``monument_ws.connection.stats.OUT_*`` constant) only labels the frame in the counters.
        """
        middleware = self._dispatch.middleware
        if middleware is not None and middleware.outgoing_hooks:
            hooked = middleware.run_outgoing(frame, self)
            if hooked is None:
                self._dispatch.stats.dropped += 1
                return True  # refused by a hook: not sent, but the socket is fine
            frame = hooked
        if not await self._sender.send(frame):
            self._not_sent()
            return False
        self._dispatch.stats.frames_out_by[kind] += 1
        return True

    def send_raw_nowait(
        self, frame: bytes, wire: bytes | None = None, kind: int = OUT_PUSH
    ) -> bool:
        """Send an already encoded text frame without waiting (False: refused, socket closing).

        ``wire`` is the same frame already framed by :func:`protocol.text_frame`;
        fan-out passes it so many sockets share one buffer. A frame given with
        its ``wire`` already went through the outgoing middleware (once, for
        every recipient); one without goes through it now, for this socket.
        """
        dispatch = self._dispatch
        middleware = dispatch.middleware
        if wire is None and middleware is not None and middleware.outgoing_hooks:
            hooked = middleware.run_outgoing(frame, self)
            if hooked is None:
                dispatch.stats.dropped += 1
                return True
            frame = hooked
        if not self._sender.offer(frame, wire):
            self._not_sent()
            return False
        dispatch.stats.frames_out_by[kind] += 1
        return True

    def flush(self) -> None:
        """Write the frames gathered in this loop turn (see :meth:`Sender.gather`)."""
        if not self._sender.flush():
            self._not_sent()

    async def drain(self) -> None:
        """Wait until every queued frame has been handed to the transport (or the socket died)."""
        await self._sender.drain()

    async def reply(self, message: Frame | Mapping[str, Any], data: Any) -> bool:
        """Answer ``message`` now, e.g. from a passthrough receiver (which gets the dict).

        The request counts as answered: the automatic reply with the
        receivers' return value is then skipped. Returns False if the request
        had no id, was already answered, or the socket is gone.
        """
        event: object
        if isinstance(message, Frame):
            event, request_id = message.event, message.id
        else:
            event, request_id = message.get("event"), message.get("id")
        if not isinstance(event, str) or request_id is None:
            return False
        request = self._table.get(request_id)
        if request is None:
            return False
        return await self.answer(request, protocol.reply(event, request_id, data))

    async def answer(self, request: Request, frame: bytes) -> bool:
        """Send the one final answer of ``request`` (a no-op once it was answered).

        Used by the dispatcher. The common case -- no outgoing hook, nothing
        queued -- is written at once without another coroutine: this repeats
        the tail of :meth:`send_raw` on purpose (delegating to it costs 2,800
        instructions per request, 3 %, by callgrind).
        """
        if request.answered:  # Request.claim(), inlined on the reply path
            return False
        request.answered = True
        middleware = self._dispatch.middleware
        if middleware is not None and middleware.outgoing_hooks:
            return await self.send_raw(frame, OUT_REPLY)
        sender = self._sender
        if not sender.offer(frame):
            self._not_sent()
            return False
        self._dispatch.stats.frames_out_by[OUT_REPLY] += 1
        if sender.queued_bytes and sender.pressed:
            await sender.drain()
        return True

    async def fail(self, request: Request, code: ErrorCode, message: str) -> None:
        """End ``request`` with an error frame (counted; sent when the request has an id)."""
        self._dispatch.stats.error(code, message, self.id)
        if request.id is not None:
            await self.answer(request, protocol.error(code, message, request.id))

    def fail_now(self, code: ErrorCode, message: str, request_id: Any) -> None:
        """End a request that ran inline with an error: counted, and sent as its answer when
        it has an id (like :meth:`fail`, without waiting)."""
        self._dispatch.stats.error(code, message, self.id)
        if request_id is not None:
            self.send_raw_nowait(protocol.error(code, message, request_id), kind=OUT_REPLY)

    def error_now(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        """Send an error frame without waiting (counted in the stats)."""
        self._dispatch.stats.error(code, message, self.id)
        self.send_raw_nowait(protocol.error(code, message, request_id), kind=OUT_ERROR)

    # --- closing ----------------------------------------------------------

    async def finish(self, grace: float) -> None:
        """Stop taking requests and wait up to ``grace`` seconds for the running ones to end.

        The reader goes on meanwhile: every new request is refused with
        ``unavailable``. Returns at once when nothing runs. The graceful
        shutdown calls it before closing with 1001.
        """
        table = self._table
        table.stop()
        if table.idle:
            return
        if self._settled is None:
            self._settled = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.shield(self._settled)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close with ``code``; frames already queued are written first (up to 5 s).

        Until the close frame is written, frames still arrive and are
        answered (new requests with ``unavailable``); frames queued after
        that point are dropped and counted.
        """
        if self._ws.closed:
            return
        self._closing = True
        self._table.stop()
        if code != CloseCode.SLOW_CONSUMER:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_DRAIN):
                    await self._sender.drain()
        self._dispatch.stats.send_queue_dropped += self._sender.close()
        await self._ws.close(code=code, message=truncate(reason).encode())

    def _not_sent(self) -> None:
        """The sender refused a frame. The first time that is because its bound was crossed
        (the client does not read), close it with 4008; otherwise it is closing already."""
        overflow = self._sender.overflow
        if overflow is None or self._closer is not None:
            return
        frames, queued = overflow
        stats = self._dispatch.stats
        stats.slow_consumers += 1
        stats.send_queue_dropped += frames + 1
        self.log.warning(
            "send queue overflowed (%d frames, %d bytes); closing as a slow consumer",
            frames,
            queued,
        )
        self._closing = True
        self._table.stop()
        self._closer = asyncio.get_running_loop().create_task(self._close_slow_consumer())

    async def _close_slow_consumer(self) -> None:
        """Send 4008, but a client that does not read cannot take even that: after a short
        grace the connection is aborted, so its buffers are freed now, not at a TCP timeout."""
        try:
            async with asyncio.timeout(_SLOW_CLOSE_GRACE):
                await self._ws.close(
                    code=CloseCode.SLOW_CONSUMER, message=b"slow consumer", drain=False
                )
        except (TimeoutError, ConnectionError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    # --- reading ----------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the socket closes, then clean up. Never raises on client input.

        On a verified aiohttp, text frames come through the response's tap
        (:mod:`monument_ws.connection.reader`) as soon as they are parsed, and
        this loop only sees the rest (close, binary) and the text frames that
        were queued before the socket was ready: the tap is attached once
        those were read, so frames are taken in the order they arrived.
        """
        tap = aiohttp_reader.tap_of(self._ws)
        # Frames from the tap are taken in this task's context (log ids, the app's context
        # variables), as frames read here are, so requests start in the same world either way.
        context = contextvars.copy_context() if tap is not None else None
        try:
            if tap is not None and tap.empty:
                tap.attach(self._tapped, context)
            async for msg in self._ws:
                if msg.type is WSMsgType.TEXT:
                    close = self._on_text(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    stats = self._dispatch.stats
                    stats.frames_in += 1
                    stats.frames_in_by[IN_INVALID] += 1
                    close = self._refuse(
                        Invalid(
                            ErrorCode.BAD_FRAME, "binary frames are not supported; send JSON text"
                        )
                    )
                else:
                    continue
                if close is not None:
                    if tap is not None:  # what the client sends from now on is not taken
                        tap.attach(None, None)
                    await self.close(*close)
                    break
                if tap is not None and tap.on_text is None and tap.empty:
                    tap.attach(self._tapped, context)
        finally:
            if tap is not None:
                tap.attach(None, None)
            await self._teardown()

    def _tapped(self, text: str | bytes) -> None:
        """A text frame from the tap, inside the connection's ``data_received``: no task runs
        this, so a close it calls for is started as a task, and what follows is dropped."""
        if self._closer is not None:
            return
        try:
            close = self._on_text(text)
        except Exception:  # a bug of ours; the client must not be able to take the server down
            self.log.exception("taking a frame failed")
            close = CloseCode.INTERNAL, "internal error"
        if close is not None:
            self._closer = asyncio.get_running_loop().create_task(self.close(*close))

    def _on_text(self, text: str | bytes) -> _Close | None:
        """Take one text frame; returns how to close when the socket must close."""
        dispatch = self._dispatch
        stats = dispatch.stats
        stats.frames_in += 1
        self.frames_in += 1
        middleware = dispatch.middleware
        if middleware is not None and middleware.listeners:
            middleware.show(self, text)
        frame = protocol.decode(text)
        guard = self._guard
        if guard is not None:
            verdict = guard.check()
            if verdict:
                return self._rate_limited(frame, verdict)
        if isinstance(frame, Invalid):
            stats.frames_in_by[IN_INVALID] += 1
            return self._refuse(frame)
        self._bad_in_a_row = 0
        if middleware is not None and middleware.incoming_hooks:
            hooked = middleware.run_incoming(frame, self)
            if isinstance(hooked, Invalid):
                stats.refused["middleware"] += 1
                self.error_now(hooked.code, hooked.message, hooked.id)
                return None
            frame = hooked
        event = frame.event
        if (
            dispatch.config.require_auth
            and self.stage != AUTHENTICATED
            and event not in _BEFORE_AUTH
        ):
            stats.frames_in_by[IN_REFUSED] += 1
            stats.refused["unauthenticated"] += 1
            if frame.id is not None:
                self.error_now(ErrorCode.UNAUTHORIZED, "authenticate with ws:auth first", frame.id)
            return None
        if frame.is_command:
            stats.frames_in_by[IN_COMMAND] += 1
            inline = dispatch.commands.inline.get(event)
            if inline is not None:
                return inline(self, frame)
            self._start(frame, Route.COMMAND)
        else:
            stats.frames_in_by[IN_EVENT] += 1
            self._start(frame, dispatch.router.route(event, dispatch.bus))
        return None

    def _rate_limited(self, frame: Frame | Invalid, verdict: Verdict) -> _Close | None:
        """A frame over the rate: refused; once per flooding episode logged; past it, close."""
        config, stats = self._dispatch.config, self._dispatch.stats
        stats.frames_in_by[IN_REFUSED] += 1
        stats.refused["frame_rate"] += 1
        if verdict is Verdict.CLOSE:
            self.log.warning(
                "still flooding after %d refused frames; closing with 4029", config.rate_burst
            )
            return CloseCode.RATE_LIMITED, "too many frames"
        if verdict is Verdict.FLOODING:
            self.log.warning(
                "over %g frames/s; refusing frames until it slows down", config.rate_limit
            )
        if frame.id is not None:
            self.error_now(
                ErrorCode.RATE_LIMITED,
                f"more than {config.rate_limit:g} frames per second",
                frame.id,
            )
        return None

    def _refuse(self, invalid: Invalid) -> _Close | None:
        if invalid.close is not None:
            self._dispatch.stats.bad_frames += 1
            return invalid.close, invalid.message
        if invalid.code in protocol.FRAME_ERRORS:
            self._dispatch.stats.bad_frames += 1
            self._bad_in_a_row += 1
        self.error_now(invalid.code, invalid.message, invalid.id)
        if self._bad_in_a_row >= self._dispatch.config.max_bad_frames:
            return CloseCode.POLICY, "too many bad frames"
        return None

    # --- running requests -------------------------------------------------

    def _start(self, frame: Frame, route: Route) -> None:
        request_id = frame.id
        if route is Route.FORBIDDEN or route is Route.UNHANDLED:
            if request_id is None:
                self._dispatch.stats.dropped += 1
            elif route is Route.FORBIDDEN:
                self.error_now(
                    ErrorCode.FORBIDDEN, f"sockets may not trigger {frame.event!r}", request_id
                )
            else:
                self.error_now(
                    ErrorCode.NOT_FOUND, f"no handler for event {frame.event!r}", request_id
                )
            return
        if route is Route.HANDLER and self._table.free_now(request_id):
            handler = self._dispatch.router.plain(frame.event)
            if handler is not None:
                self._dispatch.run_plain(self, frame, handler)
                return
        admitted = self._table.admit(request_id, None)
        if type(admitted) is Refusal:
            self._refused(admitted, frame)
        elif admitted.running:  # type: ignore[union-attr]
            self._launch(admitted, frame, route, eager.start)  # type: ignore[arg-type]
        else:  # it waits for a slot, with the route it was given now
            admitted.job = (frame, route)  # type: ignore[union-attr]

    def carry_on(self, frame: Frame, returned: Any, started: float) -> None:
        """A plain-function handler that ran inline returned something that needs a task (an
        awaitable, a stream, a yield): admit the request now and finish it in one."""
        admitted = self._table.admit(frame.id, None)
        if type(admitted) is Refusal:  # the handler itself began a drain
            close = getattr(returned, "close", None)
            if callable(close):
                close()
            self._refused(admitted, frame)
            return
        # A slot was free before the handler ran, and a plain function cannot take one.
        assert admitted.running  # type: ignore[union-attr]
        self._launch(admitted, frame, Route.HANDLER, eager.start, returned, started)  # type: ignore[arg-type]

    def _refused(self, refusal: Refusal, frame: Frame) -> None:
        request_id = frame.id
        if refusal is DUPLICATE:
            self.error_now(
                ErrorCode.DUPLICATE_ID,
                f"a request with id {request_id!r} is still running",
                request_id,
            )
        elif request_id is None:
            self._dispatch.stats.dropped += 1
        elif refusal is UNAVAILABLE:
            self.error_now(
                ErrorCode.UNAVAILABLE, "the server is shutting down; reconnect", request_id
            )
        else:
            config = self._dispatch.config
            self.error_now(
                ErrorCode.RATE_LIMITED,
                f"{config.max_inflight} requests running and "
                f"{config.max_queued} waiting on this socket",
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
        task = start(self._dispatch.run(self, frame, route, request, *returned))
        if not task.done():  # done: it ran to its end without suspending (eager start)
            request.task = task

    def ended(self, request: Request) -> None:
        """``request``'s task is ending (the dispatcher calls it last): free its slot for the
        next waiting request, or wake :meth:`finish` when none is left."""
        following = self._table.finish(request)
        if following is not None:
            frame, route = following.job
            # A plain task, not an eager one: a line of requests that end without
            # suspending would otherwise start each other recursively.
            self._launch(following, frame, route, asyncio.get_running_loop().create_task)
        elif self._settled is not None and self._table.idle:
            settled, self._settled = self._settled, None
            if not settled.done():
                settled.set_result(None)

    def _cancel(self, frame: Frame) -> _Close | None:
        """``ws:cancel``: end a running or waiting request with ``cancelled``."""
        target = frame.data.get("id") if isinstance(frame.data, dict) else None
        if target is None or protocol.check_id(target) is not None:
            return self._refuse(
                Invalid(ErrorCode.BAD_FRAME, "ws:cancel needs data {'id': <request id>}", frame.id)
            )
        request = self._table.cancel(target)
        if request is None:
            if frame.id is not None:
                self.error_now(
                    ErrorCode.NOT_FOUND, f"no running request with id {target!r}", frame.id
                )
            return None
        task = request.task
        if task is not None:
            task.cancel()
            # A task cancelled before its first step never runs its coroutine (nor the
            # dispatcher's call to ended()): free the slot when it is done, whichever way.
            task.add_done_callback(lambda _: self.ended(request))
        self.error_now(ErrorCode.CANCELLED, "cancelled by the client", target)
        if frame.id is not None:
            self.send_raw_nowait(protocol.reply(frame.event, frame.id, {}), kind=OUT_REPLY)
        return None

    async def _teardown(self) -> None:
        self._closing = True
        # First: aiohttp may have written a close frame already (the client closed).
        self._dispatch.stats.send_queue_dropped += self._sender.close()
        running = self._table.close()
        self._calls.fail_all(ConnectionLost("the socket closed"))
        tasks = [request.task for request in running if request.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)


# --- the commands the socket answers itself (see monument_ws.connection.commands) ---------


def _ping(socket: Socket, frame: Frame) -> None:
    socket.send_raw_nowait(protocol.reply(frame.event, frame.id, {}), kind=OUT_REPLY)


def _cancel(socket: Socket, frame: Frame) -> _Close | None:
    return socket._cancel(frame)


def _result(socket: Socket, frame: Frame) -> None:
    if not socket._calls.resolve(frame.raw.get("call"), frame.data):
        socket._dispatch.stats.dropped += 1  # late (timed out) or unknown call


def _error(socket: Socket, frame: Frame) -> None:
    error = from_error_frame(frame.raw.get("error"))
    if not socket._calls.reject(frame.raw.get("call"), error):
        socket._dispatch.stats.dropped += 1


#: The inline commands of every socket, for :class:`~monument_ws.connection.commands.Commands`.
INLINE_COMMANDS: dict[str, InlineCommand] = {
    "ws:ping": _ping,
    "ws:cancel": _cancel,
    protocol.RESULT_EVENT: _result,
    protocol.ERROR_EVENT: _error,
}
