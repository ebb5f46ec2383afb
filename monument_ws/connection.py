"""One client connection: the read loop, request tasks, and a bounded send queue.

Guarantees of a :class:`Socket`:

* **Exactly one final answer per request id** while the socket lives: a reply,
  the end of a stream, or an error. A second request with an id still in
  flight gets ``duplicate_id`` and the first is unaffected.
* **Bad input never raises**: every refused frame gets a ``ws:error`` frame
  and the socket stays open, until ``max_bad_frames`` bad frames in a row
  close it with 1008. A handler's unexpected exception becomes ``internal``
  with a generic message; the traceback goes to the server log only.
* **Bounded memory**: at most ``max_inflight`` requests run at once, at most
  ``max_queued`` more wait for a slot in arrival order (beyond that:
  ``rate_limited``), and at most ``send_queue_limit`` frames wait to be
  written. A client that does not read is a slow consumer: its queue is
  dropped and the socket closed with 4008, so one slow client never holds the
  server's memory or slows anyone else. :meth:`Socket.send` applies
  backpressure instead (it waits while the queue is more than half full), so
  application code that awaits it is slowed down, not disconnected.
* **Typed yields** (:mod:`monument_ws.yields`) become their frames: a SYNC
  frame is computed from this socket's remembered objects (bounded by
  ``sync_memory``) and queued before the next is computed, so patches arrive in
  the order they were made; an ERROR yield is the request's one final answer.
* **Nothing outlives the socket**: when it closes, queued requests are
  dropped, server → client calls fail with ConnectionLost, running handlers are
  cancelled (async generators get ``aclose()``), their pending data waits are
  removed from the bus, queued frames are dropped, and the socket leaves the
  registry, so it can be garbage-collected.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import secrets
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, MutableMapping
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from . import protocol
from .auth import AUTHENTICATED, Session, TokenBucket
from .errors import ConnectionLost, MonumentWSError, NotFound, Timeout, from_error_frame
from .kick import truncate
from .middleware import Middleware
from .peerqueue import PeerQueues, Queued
from .protocol import CloseCode, ErrorCode, Frame, Invalid, RequestId
from .router import Route, Router
from .rpc import PendingCalls
from .stats import (
    IN_COMMAND,
    IN_EVENT,
    IN_INVALID,
    IN_REFUSED,
    OUT_ERROR,
    OUT_PUSH,
    OUT_REPLY,
)
from .sync import SyncState
from .yields import Yield, YieldType

if TYPE_CHECKING:
    from .bus import EventBus
    from .config import Config
    from .stats import Stats

log = logging.getLogger("monument_ws")

#: What a socket may send before it is authenticated (with require_auth).
_BEFORE_AUTH = frozenset({"ws:auth", "ws:ping", "ws:heartbeat"})

#: Seconds a slow consumer's close handshake may take before the connection is aborted.
_SLOW_CLOSE_GRACE = 2.0

#: Bytes buffered in a transport above which frames go through the send queue.
_HIGH_WATER = 64 * 1024

if sys.version_info >= (3, 12):

    def _start_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a request's first step now, as its own task (current_task, context).

        A handler that answers without awaiting anything never waits for a
        turn of the event loop, which is most of the cost of a small request.
        """
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)

else:

    def _start_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        # Python 3.11 has no eager tasks; running the first step inline there would run
        # the handler as the reader's task (asyncio.timeout() would cancel the reader).
        return asyncio.get_running_loop().create_task(coro)


#: Chunks a stream sends before it hands the event loop over, even when none had to wait.
_STREAM_YIELD_EVERY = 64

#: A ``ws:`` command offered by a layer above: ``await command(socket, frame)`` is the reply.
Command = Callable[["Socket", Frame], Awaitable[Any]]

#: Sends a BROADCAST yield: ``await fanout(event, data, channel)`` (channel None: every socket).
Fanout = Callable[[str, Any, "str | None"], Awaitable[None]]


class _SocketLog(logging.LoggerAdapter[logging.Logger]):
    """Adds ``socket_id`` and ``client_id`` to every record, so one connection's story can be
    grepped (:mod:`monument_ws.logs` formats them, as text or JSON). Explicit, not taken from
    the context: these lines are also written from other sockets' tasks (e.g. fan-out)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = self.extra
        return msg, kwargs


class _Request:
    """A request with an id that is running: its task and whether it was answered."""

    __slots__ = ("answered", "task")

    def __init__(self) -> None:
        self.answered = False
        self.task: asyncio.Task[None] | None = None


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
        "_bucket",
        "_bus",
        "_calls",
        "_closing",
        "_commands",
        "_config",
        "_dead",
        "_drained",
        "_draining",
        "_fanout",
        "_inflight",
        "_limited_in_a_row",
        "_log",
        "_middleware",
        "_queue",
        "_router",
        "_stats",
        "_sync",
        "_tasks",
        "_transport",
        "_waiting",
        "_writer",
        "_writing",
        "_ws",
        "client_id",
        "frames_in",
        "id",
        "ip",
        "queue_peak_bytes",
        "queue_peak_frames",
        "queued_bytes",
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
        config: Config,
        bus: EventBus,
        router: Router,
        stats: Stats,
        commands: Mapping[str, Command] | None = None,
        middleware: Middleware | None = None,
        fanout: Fanout | None = None,
    ) -> None:
        self.id = secrets.token_hex(6)
        self.client_id = client_id
        self.resumed = resumed
        self.request = request
        self.state: dict[str, Any] = {}
        self._ws = ws
        # Written to directly by the fast path, except with compression (frames need deflate).
        self._transport = None if config.compression else request.transport
        self._config = config
        self._bus = bus
        self._router = router
        self._stats = stats
        self._log = _SocketLog(log, {"socket_id": self.id, "client_id": client_id})
        # The send queue and the waiting requests exist only while something waits: an
        # empty deque costs 600 bytes, times every idle socket.
        self._queue: deque[bytes] | None = None
        self._writing = False
        self._writer: asyncio.Task[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._closing = False  # no new frames are accepted
        self._dead = False  # the transport is gone: drop everything
        self._draining = False  # the server is shutting down: no new requests
        self._inflight: dict[RequestId, _Request] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # running requests, with or without id
        self._waiting: deque[tuple[Frame, Route, _Request | None]] | None = None
        self._calls = PendingCalls()
        self._commands = commands or {}
        self._middleware = middleware
        self._fanout = fanout
        self._sync: SyncState | None = None  # created by the first SYNC yield
        self._bad_in_a_row = 0
        #: frames received: any frame is a sign of life (presence reads it)
        self.frames_in = 0
        #: the send queue's own counters: bytes waiting now, and the most ever waiting
        self.queued_bytes = 0
        self.queue_peak_bytes = 0
        self.queue_peak_frames = 0
        #: who this socket is (set by the plugin from the session parser or ws:auth)
        self.session = Session()
        #: "authenticated" once a session parser or ws:auth said so, else "anonymous" or an auth stage
        self.stage = "anonymous"
        self.ip = "unknown"
        #: the peer queues (set by the plugin); see enqueue() and consume()
        self.queues: PeerQueues | None = None
        self._bucket = (
            TokenBucket(config.rate_limit, config.rate_burst, time.monotonic)
            if config.rate_limit
            else None
        )
        self._limited_in_a_row = 0

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
    def running(self) -> int:
        """Requests running right now (with or without an id); at most ``max_inflight``."""
        return len(self._tasks)

    @property
    def queued(self) -> int:
        """Requests waiting for a free slot; at most ``max_queued``."""
        return len(self._waiting) if self._waiting is not None else 0

    @property
    def pending_calls(self) -> int:
        """Server → client calls waiting for the client's answer."""
        return len(self._calls)

    async def call(self, event: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Call the client: send ``{"event", "call": n, "data"}`` and return its ``ws:result``.

        ``timeout`` defaults to the ``call_timeout`` setting (0 or None there:
        wait forever). Raises :class:`~monument_ws.errors.Timeout` when no
        answer comes in time, :class:`~monument_ws.errors.ConnectionLost` when
        the socket closes first, and the typed error the client answered with
        ``ws:error`` (e.g. NotFound when it performs no such event).
        """
        if timeout is None:
            timeout = self._config.call_timeout
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
        client after a reconnect to another process; see :mod:`monument_ws.peerqueue`.
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
        Returns False, without raising, if the socket is closed or closing.
        """
        return await self.send_raw(protocol.push(event, data))

    def send_nowait(self, event: str, data: Any = None) -> bool:
        """Like :meth:`send` without waiting; a full queue closes the socket with 4008."""
        return self.send_raw_nowait(protocol.push(event, data))

    async def send_raw(self, frame: bytes, kind: int = OUT_PUSH) -> bool:
        """Send an already encoded text frame, waiting for room in the queue.

        ``kind`` (a ``monument_ws.stats.OUT_*`` constant) only labels the frame in the counters.
        """
        middleware = self._middleware
        if middleware is not None and middleware.outgoing_hooks:
            hooked = middleware.run_outgoing(frame, self)
            if hooked is None:
                self._stats.dropped += 1
                return True  # refused by a hook: not sent, but the socket is fine
            frame = hooked
        if self._write_now(frame, None):
            self._stats.frames_out_by[kind] += 1
            return True
        if not self._enqueue(frame):
            return False
        self._stats.frames_out_by[kind] += 1
        if not self._writing:
            await self._flush()
        elif self._queue is not None and len(self._queue) > self._config.send_queue_limit // 2:
            await self.drain()
        return True

    def send_raw_nowait(
        self, frame: bytes, wire: bytes | None = None, kind: int = OUT_PUSH
    ) -> bool:
        """Send an already encoded text frame without waiting.

        ``wire`` is the same frame already framed by :func:`protocol.text_frame`;
        fan-out passes it so many sockets share one buffer. A frame given with
        its ``wire`` already went through the outgoing middleware (once, for
        every recipient); one without goes through it now, for this socket.
        """
        middleware = self._middleware
        if wire is None and middleware is not None and middleware.outgoing_hooks:
            hooked = middleware.run_outgoing(frame, self)
            if hooked is None:
                self._stats.dropped += 1
                return True
            frame = hooked
        if self._write_now(frame, wire):
            self._stats.frames_out_by[kind] += 1
            return True
        if not self._enqueue(frame):
            return False
        self._stats.frames_out_by[kind] += 1
        if not self._writing:
            self._writer = asyncio.create_task(self._flush())
        return True

    def _reply_now(self, frame: bytes) -> bool:
        """Write a reply at once if nothing stands in the way (no outgoing hook, room to write)."""
        middleware = self._middleware
        if middleware is not None and middleware.outgoing_hooks:
            return False
        if self._write_now(frame, None):
            self._stats.frames_out_by[OUT_REPLY] += 1
            return True
        return False

    def _write_now(self, frame: bytes, wire: bytes | None) -> bool:
        """The fast path: nothing queued and the transport has room, so write it whole, now.

        Order is kept because it is only taken when no frame waits in the
        queue; a transport above the high-water mark (a client not reading)
        sends frames through the bounded queue instead.
        """
        transport = self._transport
        if (
            transport is None
            or self._queue
            or self._writing
            or self._closing
            or self._dead
            or transport.is_closing()
            or transport.get_write_buffer_size() > _HIGH_WATER
        ):
            return False
        transport.write(wire if wire is not None else protocol.text_frame(frame))
        self._stats.frames_out += 1
        return True

    async def drain(self) -> None:
        """Wait until every queued frame has been handed to the transport (or the socket died)."""
        if not self._queue and not self._writing:
            return
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drained)

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
        request = self._inflight.get(request_id)
        if request is None:
            return False
        return await self._answer(request, protocol.reply(event, request_id, data))

    async def finish(self, grace: float) -> None:
        """Stop taking requests (new ones get ``unavailable``) and wait up to ``grace``
        seconds for the running ones to send their answers; the graceful shutdown
        calls it before closing with 1001."""
        self._draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._tasks:  # queued requests start as running ones end
                    await asyncio.wait([*self._tasks])

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close with ``code``; frames already queued are written first (up to 5 s)."""
        if self._ws.closed:
            return
        self._closing = True
        if code != CloseCode.SLOW_CONSUMER and not self._dead:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), 5.0)
        await self._ws.close(code=code, message=truncate(reason).encode())

    def _enqueue(self, frame: bytes) -> bool:
        if self._closing or self._dead:
            return False
        cfg = self._config
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if (
            len(queue) >= cfg.send_queue_limit
            or self.queued_bytes + len(frame) > cfg.send_queue_bytes
        ):
            self._stats.slow_consumers += 1
            self._stats.send_queue_dropped += len(queue) + 1
            self._log.warning(
                "send queue overflowed (%d frames, %d bytes); closing as a slow consumer",
                len(queue),
                self.queued_bytes,
            )
            self._queue = None
            self.queued_bytes = 0
            self._closing = True
            asyncio.get_running_loop().create_task(self._close_slow_consumer())
            return False
        queue.append(frame)
        self.queued_bytes += len(frame)
        self.queue_peak_frames = max(self.queue_peak_frames, len(queue))
        self.queue_peak_bytes = max(self.queue_peak_bytes, self.queued_bytes)
        return True

    async def _close_slow_consumer(self) -> None:
        """Send 4008, but a client that does not read cannot take even that: after a short
        grace the connection is aborted, so its buffers are freed now, not at a TCP timeout."""
        try:
            await asyncio.wait_for(
                self._ws.close(code=CloseCode.SLOW_CONSUMER, message=b"slow consumer", drain=False),
                _SLOW_CLOSE_GRACE,
            )
        except (TimeoutError, ConnectionError):
            if self._transport is not None or self.request.transport is not None:
                transport = self._transport or self.request.transport
                assert transport is not None
                transport.abort()

    async def _flush(self) -> None:
        # Whoever finds the writer idle becomes the writer and drains the whole
        # queue, so a reply needs no extra task and fan-out needs at most one.
        self._writing = True
        try:
            while self._queue:
                frame = self._queue.popleft()
                self.queued_bytes -= len(frame)
                await self._ws.send_frame(frame, WSMsgType.TEXT)
                self._stats.frames_out += 1
            self._queue = None
        except (ConnectionError, RuntimeError):
            self._dead = True
            self._queue = None
            self.queued_bytes = 0
        finally:
            self._writing = False
            if self._queue:
                # The writer was cancelled mid-queue (its request was): hand over.
                self._writer = asyncio.get_running_loop().create_task(self._flush())
            elif self._drained is not None:
                if not self._drained.done():
                    self._drained.set_result(None)
                self._drained = None

    # --- answering --------------------------------------------------------

    async def _answer(self, request: _Request | None, frame: bytes) -> bool:
        """Send the one final answer of ``request`` (None: a request without id)."""
        if request is not None:
            if request.answered:
                return False
            request.answered = True
        return self._reply_now(frame) or await self.send_raw(frame, OUT_REPLY)

    async def _fail(
        self, request_id: RequestId | None, request: _Request | None, code: ErrorCode, message: str
    ) -> None:
        self._stats.error(code, message, self.id)
        if request_id is None:
            return
        await self._answer(request, protocol.error(code, message, request_id))

    def _error_now(
        self, code: ErrorCode, message: str, request_id: RequestId | None = None
    ) -> None:
        self._stats.error(code, message, self.id)
        self.send_raw_nowait(protocol.error(code, message, request_id), kind=OUT_ERROR)

    # --- reading ----------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the socket closes, then clean up. Never raises on client input."""
        try:
            async for msg in self._ws:
                if msg.type is WSMsgType.TEXT:
                    self._on_text(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._stats.frames_in += 1
                    self._stats.frames_in_by[IN_INVALID] += 1
                    self._refuse(
                        Invalid(
                            ErrorCode.BAD_FRAME, "binary frames are not supported; send JSON text"
                        )
                    )
                if self._bad_in_a_row >= self._config.max_bad_frames:
                    await self.close(CloseCode.POLICY, "too many bad frames")
                    break
        finally:
            await self._teardown()

    def _on_text(self, text: str | bytes) -> None:
        self._stats.frames_in += 1
        self.frames_in += 1
        middleware = self._middleware
        if middleware is not None and middleware.listeners:
            middleware.show(self, text)
        frame = protocol.decode(text)
        by_kind = self._stats.frames_in_by
        if self._bucket is not None and not self._bucket.take():
            by_kind[IN_REFUSED] += 1
            self._rate_limited(frame)
            return
        self._limited_in_a_row = 0
        if isinstance(frame, Invalid):
            by_kind[IN_INVALID] += 1
            self._refuse(frame)
            return
        self._bad_in_a_row = 0
        if middleware is not None and middleware.incoming_hooks:
            frame = middleware.run_incoming(frame, self)
            if isinstance(frame, Invalid):
                self._stats.refused["middleware"] += 1
                self._error_now(frame.code, frame.message, frame.id)
                return
        if (
            self._config.require_auth
            and self.stage != AUTHENTICATED
            and frame.event not in _BEFORE_AUTH
        ):
            by_kind[IN_REFUSED] += 1
            self._stats.refused["unauthenticated"] += 1
            if frame.id is not None:
                self._error_now(ErrorCode.UNAUTHORIZED, "authenticate with ws:auth first", frame.id)
            return
        if frame.is_command:
            by_kind[IN_COMMAND] += 1
            self._command(frame)
        else:
            by_kind[IN_EVENT] += 1
            self._start(frame)

    def _rate_limited(self, frame: Frame | Invalid) -> None:
        """Over the frame rate: refuse this frame; a socket that keeps flooding is closed with 4029."""
        self._limited_in_a_row += 1
        self._stats.refused["frame_rate"] += 1
        if self._limited_in_a_row == 1:
            self._log.warning("over %g frames/s; refusing frames", self._config.rate_limit)
        if self._limited_in_a_row > self._config.rate_burst:
            if not self._closing:
                self._closing = True
                self._log.warning(
                    "still flooding after %d refused frames; closing with 4029",
                    self._config.rate_burst,
                )
                asyncio.get_running_loop().create_task(
                    self._ws.close(code=CloseCode.RATE_LIMITED, message=b"too many frames")
                )
            return
        if frame.id is not None:
            self._error_now(
                ErrorCode.RATE_LIMITED,
                f"more than {self._config.rate_limit:g} frames per second",
                frame.id,
            )

    def _refuse(self, invalid: Invalid) -> None:
        if invalid.code in protocol.FRAME_ERRORS:
            self._stats.bad_frames += 1
            self._bad_in_a_row += 1
        self._error_now(invalid.code, invalid.message, invalid.id)

    def _command(self, frame: Frame) -> None:
        event, request_id = frame.event, frame.id
        if event in self._commands:
            self._start(frame, Route.COMMAND)
        elif event == "ws:ping":
            self.send_raw_nowait(protocol.reply(event, request_id, {}), kind=OUT_REPLY)
        elif event == "ws:heartbeat":
            if request_id is not None:
                self.send_raw_nowait(protocol.reply(event, request_id, {}), kind=OUT_REPLY)
        elif event == "ws:cancel":
            self._cancel(frame)
        elif event == protocol.RESULT_EVENT:
            if not self._calls.resolve(frame.raw.get("call"), frame.data):
                self._stats.dropped += 1  # late (timed out) or unknown call
        elif event == protocol.ERROR_EVENT:
            error = from_error_frame(frame.raw.get("error"))
            if not self._calls.reject(frame.raw.get("call"), error):
                self._stats.dropped += 1
        else:
            self._error_now(
                ErrorCode.NOT_FOUND,
                f"the command {event!r} is not available on this server",
                request_id,
            )

    def _cancel(self, frame: Frame) -> None:
        target = frame.data.get("id") if isinstance(frame.data, dict) else None
        if target is None or protocol.check_id(target) is not None:
            self._refuse(
                Invalid(ErrorCode.BAD_FRAME, "ws:cancel needs data {'id': <request id>}", frame.id)
            )
            return
        request = self._inflight.pop(target, None)
        if request is None or request.answered:
            if frame.id is not None:
                self._error_now(
                    ErrorCode.NOT_FOUND, f"no running request with id {target!r}", frame.id
                )
            return
        request.answered = True  # a queued request is skipped when its turn comes
        if request.task is not None:
            request.task.cancel()
        self._error_now(ErrorCode.CANCELLED, "cancelled by the client", target)
        if frame.id is not None:
            self.send_raw_nowait(protocol.reply(frame.event, frame.id, {}), kind=OUT_REPLY)

    def _start(self, frame: Frame, route: Route | None = None) -> None:
        request_id = frame.id
        if request_id is not None and request_id in self._inflight:
            self._error_now(
                ErrorCode.DUPLICATE_ID,
                f"a request with id {request_id!r} is still running",
                request_id,
            )
            return
        if self._draining:
            if request_id is None:
                self._stats.dropped += 1
            else:
                self._error_now(
                    ErrorCode.UNAVAILABLE, "the server is shutting down; reconnect", request_id
                )
            return
        if route is None:
            route = self._router.route(frame.event, self._bus)
        if route is Route.FORBIDDEN or route is Route.UNHANDLED:
            if request_id is None:
                self._stats.dropped += 1
            elif route is Route.FORBIDDEN:
                self._error_now(
                    ErrorCode.FORBIDDEN, f"sockets may not trigger {frame.event!r}", request_id
                )
            else:
                self._error_now(
                    ErrorCode.NOT_FOUND, f"no handler for event {frame.event!r}", request_id
                )
            return
        running = len(self._tasks) < self._config.max_inflight
        if not running and self.queued >= self._config.max_queued:
            if request_id is None:
                self._stats.dropped += 1
            else:
                self._error_now(
                    ErrorCode.RATE_LIMITED,
                    f"{self._config.max_inflight} requests running and "
                    f"{self._config.max_queued} waiting on this socket",
                    request_id,
                )
            return
        request = None
        if request_id is not None:
            request = self._inflight[request_id] = _Request()
        if running:
            self._launch(frame, route, request)
        else:
            if self._waiting is None:
                self._waiting = deque()
            self._waiting.append((frame, route, request))

    def _launch(self, frame: Frame, route: Route, request: _Request | None) -> None:
        task = _start_task(self._run(frame, route, request))
        if task.done():  # ran to its end without suspending (eager start, Python >= 3.12)
            return
        if request is not None:
            request.task = task
        self._tasks.add(task)

    def _finished(self) -> None:
        """A request's task ends (called by itself, cheaper than a done callback): free its slot."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)
        if self._closing:
            return
        waiting = self._waiting
        while waiting and len(self._tasks) < self._config.max_inflight:
            frame, route, request = waiting.popleft()
            if request is None or not request.answered:  # skip requests cancelled while queued
                self._launch(frame, route, request)

    async def _run(self, frame: Frame, route: Route, request: _Request | None) -> None:
        request_id = frame.id
        started = time.perf_counter()
        try:
            if route is Route.HANDLER:
                await self._run_handler(frame, request)
            elif route is Route.DATA:
                value = await self._bus.ask(
                    frame.event,
                    frame.data,
                    timeout=self._config.data_timeout,
                    message=frame.raw,
                    socket=self,
                )
                set_event = protocol.set_event_for(frame.event)
                assert set_event is not None
                # Data events are answered even without an id, as monument did.
                await self._answer(request, protocol.reply(set_event, request_id, value))
            elif route is Route.COMMAND:
                result = await self._commands[frame.event](self, frame)
                if request_id is not None:
                    await self._answer(request, protocol.reply(frame.event, request_id, result))
            else:
                values = await self._bus.emit(
                    frame.event, frame.data, message=frame.raw, socket=self
                )
                if request_id is not None:
                    value = next((v for v in values if v is not None), None)
                    await self._answer(request, protocol.reply(frame.event, request_id, value))
        except MonumentWSError as exc:
            await self._fail(request_id, request, exc.code, exc.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._log.exception("handler for %r failed", frame.event)
            await self._fail(request_id, request, ErrorCode.INTERNAL, "internal error")
        finally:
            self._stats.route_latency(route.value).observe(time.perf_counter() - started)
            if request_id is not None and self._inflight.get(request_id) is request:
                del self._inflight[request_id]
            self._finished()

    async def _run_handler(self, frame: Frame, request: _Request | None) -> None:
        handler = self._router.get(frame.event)
        if handler is None:  # removed (e.g. by a hot reload) after routing
            raise NotFound(f"no handler for event {frame.event!r}")
        result = handler(frame, self)
        if type(result) is not CoroutineType:
            if inspect.isasyncgen(result):
                await self._stream(frame, request, result)
                return
            if inspect.isawaitable(result):
                result = await result
        else:
            result = await result
        if isinstance(result, Yield):
            await self._deliver(frame, request, result, final=True)
        elif request is not None:
            # The common case, a plain value answering an id, without _deliver's generality.
            await self._answer(request, protocol.reply(frame.event, frame.id, result))

    async def _stream(
        self, frame: Frame, request: _Request | None, items: AsyncIterator[Any]
    ) -> None:
        """Send each item as a chunk (a push without an id), then ``end``.

        Each chunk waits for the send queue to drain, so a fast generator is
        slowed down to the client's pace instead of overflowing the queue. A
        generator that never awaits, read by a client that keeps up, never has
        to wait: every ``_STREAM_YIELD_EVERY`` chunks the stream yields to the
        event loop anyway, so it cannot starve the other sockets until it ends.
        An ERROR or NOT_FOUND yield ends the reply and closes the generator.
        """
        chunks = 0
        async with contextlib.aclosing(items):  # type: ignore[type-var]
            async for item in items:
                if not await self._deliver(frame, request, item, final=False):
                    return
                await self.drain()
                chunks += 1
                if chunks == _STREAM_YIELD_EVERY:
                    chunks = 0
                    await asyncio.sleep(0)
        if frame.id is not None:
            await self._answer(request, protocol.end(frame.event, frame.id))

    async def _deliver(
        self, frame: Frame, request: _Request | None, item: Any, *, final: bool
    ) -> bool:
        """Send one value a handler yielded, or returned (``final``); False: stop it.

        The frames are those of :mod:`monument_ws.yields`. A SYNC frame is
        computed and queued with no await in between, so the patches of one
        socket are queued in the order they were computed.
        """
        if request is not None and request.answered:
            return False
        kind = item.type if isinstance(item, Yield) else YieldType.MESSAGE
        if kind is YieldType.ERROR or kind is YieldType.NOT_FOUND:
            await self._fail(frame.id, request, item.code, item.message)
            return False
        if kind is YieldType.BROADCAST:
            if self._fanout is None:
                raise RuntimeError("broadcast yields need a socket served by monument_ws.setup()")
            await self._fanout(item.event or frame.event, item.data, item.channel)
            if final and frame.id is not None:
                await self._answer(request, protocol.reply(frame.event, frame.id, None))
            return True
        event = frame.event
        body: dict[str, Any]
        if isinstance(item, Yield):
            event = item.event or frame.event
            if kind is YieldType.SYNC:
                if self._sync is None:
                    self._sync = SyncState(self._config.sync_memory)
                mode, data = self._sync.frame_data(event, item.data)
                body = {"sync": mode, "data": data}
            elif kind.is_custom:
                body = {"type": kind.value, "data": item.data}
            else:
                body = {"data": item.data}
        else:
            body = {"data": item}
        if frame.id is None or event != frame.event:
            sent = await self.send_raw(protocol.encode({"event": event, **body}))
            if final and frame.id is not None:  # the request still gets its one answer
                return await self._answer(request, protocol.reply(frame.event, frame.id, None))
            return sent
        if final:
            return await self._answer(
                request, protocol.encode({"event": event, "id": frame.id, **body})
            )
        return await self.send_raw(
            protocol.encode({"event": event, "id": frame.id, **body, "more": True})
        )

    async def _teardown(self) -> None:
        self._closing = True
        self._waiting = None
        self._calls.fail_all(ConnectionLost("the socket closed"))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()
        self._queue = None
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None
