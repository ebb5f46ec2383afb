"""One client connection as handlers see it: who it is, what it holds, how to write to it.

A :class:`Socket` ties together the parts of one connection:

* its :class:`~monument_ws.connection.outbound.Outbound`, the way out: outgoing
  hooks, counters and the one bounded send path
  (:class:`~monument_ws.connection.sender.Sender`); a client that does not read
  is closed with 4008, so it never holds the server's memory or slows anyone
  else. :meth:`Socket.send` waits instead while the queue is more than half
  full, so application code that awaits it is slowed down, not disconnected;
* its :class:`~monument_ws.connection.admission.Admission`, the requests:
  at most ``max_inflight`` run at once and ``max_waiting`` more wait (beyond:
  ``rate_limited``), with exactly one final answer per request id;
* its server → client calls (:class:`~monument_ws.connection.calls.PendingCalls`).

Its reader is :meth:`monument_ws.connection.inbound.Inbound.serve`, which the plugin
runs for the socket's whole life. Guarantees that span the parts:

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
import functools
import logging
import secrets
from collections.abc import Callable, Coroutine, Mapping, MutableMapping
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from .. import protocol
from ..bus import EventBus
from ..config import Config
from ..protocol.codecs import CodecSession
from ..protocol.errors import (
    ConnectionLost,
    MonumentWSError,
    NotFound,
    Timeout,
    from_error_frame,
)
from ..protocol.frames import CloseCode, Frame, Invalid, Queued
from ..protocol.patches import SyncState
from . import reads
from .admission import Admission, Runner
from .auth import Session
from .calls import PendingCalls
from .commands import InlineCommand
from .outbound import Outbound, OutgoingHooks
from .requests import RequestTable
from .sender import CodecSender, Sender
from .stats import OUT_PUSH, OUT_REPLY, Stats

log = logging.getLogger("monument_ws")


class Server(Runner, Protocol):
    """What a socket needs of the server that serves it (the
    :class:`~monument_ws.connection.dispatch.Dispatcher`)."""

    @property
    def config(self) -> Config: ...

    @property
    def middleware(self) -> OutgoingHooks | None: ...

    @property
    def bus(self) -> EventBus: ...


class PeerQueueStore(Protocol):
    """The peer queues a socket reads and writes (:class:`~monument_ws.channels.peer_queues.PeerQueues`)."""

    async def enqueue(self, client_id: str, data: Any) -> int: ...

    async def consume(
        self, client_id: str, accept: Callable[[Any], bool] | None
    ) -> Queued | None: ...

    async def pending(self, client_id: str) -> int: ...


class _SocketLog(logging.LoggerAdapter[logging.Logger]):
    """Adds ``socket_id`` and ``client_id`` to every record, so one connection's story can be
    grepped (:mod:`monument_ws.logs` formats them, as text or JSON). Explicit, not taken from
    the context: these lines are also written from other sockets' tasks (e.g. fan-out)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = self.extra
        return msg, kwargs


def _sender(
    request: web.Request,
    ws: web.WebSocketResponse,
    config: Config,
    stats: Stats,
    codec: CodecSession | None,
) -> Sender:
    """The bounded send path of a new socket: a :class:`CodecSender` for another wire format
    (its frames are written as its codec made them), else the native :class:`Sender`."""
    limits: dict[str, int] = {
        "max_frames": config.send_buffer_frames,
        "max_bytes": config.send_buffer_bytes,
    }
    if codec is not None:
        return CodecSender(request.transport, request.writer, **limits, stats=stats, codec=codec)
    # deflate state lives in aiohttp's writer: with compression every frame goes there
    write_frame = (
        functools.partial(ws.send_frame, opcode=WSMsgType.TEXT) if config.compression else None
    )
    return Sender(request.transport, request.writer, **limits, stats=stats, write_frame=write_frame)


class Socket:
    """One WebSocket client. Handlers receive it as ``socket``.

    ``id`` is unique per connection; ``client_id`` is the server-issued
    identity that survives reconnects made with the ``resume`` secret.
    ``request`` is the aiohttp upgrade request (headers, cookies, query) and
    ``state`` a dict for the application's per-socket data.
    """

    __slots__ = (
        "__weakref__",
        "_calls",
        "_config",
        "_log",
        "_queues",
        "_sync",
        "_ws",
        "admission",
        "client_id",
        "frames_in",
        "id",
        "ip",
        "outbound",
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
        dispatch: Server,
        ip: str = "unknown",
        queues: PeerQueueStore | None = None,
        codec: CodecSession | None = None,
    ) -> None:
        config = dispatch.config
        self.id = secrets.token_hex(6)
        self.client_id = client_id
        self.resumed = resumed
        self.request = request
        self.state: dict[str, Any] = {}
        #: the client's address (the first untrusted hop of X-Forwarded-For behind a proxy)
        self.ip = ip
        self._ws = ws
        self._config = config
        self._log: _SocketLog | None = None  # made on first use: most sockets never log
        transport = request.transport
        reads.small_reads(transport)
        sender = _sender(request, ws, config, dispatch.stats, codec)
        table = RequestTable(config.max_inflight, config.max_waiting)
        #: the way out: hooks, counters, the bounded send path
        self.outbound = Outbound(
            self, ws, transport, sender, table, dispatch.stats, dispatch.middleware, dispatch.bus
        )
        #: the requests: which run, which wait, what ends them
        self.admission = Admission(self, dispatch, self.outbound, table)
        self._calls = PendingCalls()
        self._sync: SyncState | None = None  # created by the first SYNC yield
        self._queues = queues
        #: frames received: any frame is a sign of life (presence reads it)
        self.frames_in = 0
        #: who this socket is (set by the plugin from the session parser or ws:auth)
        self.session = Session()
        #: "authenticated" once a session parser or ws:auth said so, else "anonymous" or an auth stage
        self.stage = "anonymous"

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Socket {self.id} client={self.client_id} {state}>"

    @property
    def closed(self) -> bool:
        return self.outbound.closing or self._ws.closed

    @property
    def close_code(self) -> int | None:
        """The code the socket closed with: the server's when the server closed it (e.g. 1009,
        4409), else the client's, 1006 when the connection dropped without a close frame, None
        while open."""
        code = self.outbound.close_code
        return code if code is not None else self._ws.close_code

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """The server log, with this socket's ``socket_id`` and ``client_id`` on every record."""
        if self._log is None:
            self._log = _SocketLog(log, {"socket_id": self.id, "client_id": self.client_id})
        return self._log

    @property
    def running(self) -> int:
        """Requests running right now (with or without an id); at most ``max_inflight``."""
        return self.admission.table.running

    @property
    def waiting(self) -> int:
        """Requests waiting for a free slot; at most ``max_waiting``."""
        return self.admission.table.waiting

    @property
    def pending_calls(self) -> int:
        """Server → client calls waiting for the client's answer."""
        return len(self._calls)

    @property
    def sender(self) -> Sender:
        """The send path (its counters show the most it ever held)."""
        return self.outbound.sender

    @property
    def buffered_bytes(self) -> int:
        """Bytes waiting in the send buffer now."""
        return self.outbound.sender.queued_bytes

    @property
    def buffer_peak_bytes(self) -> int:
        return self.outbound.sender.peak_bytes

    @property
    def buffer_peak_frames(self) -> int:
        return self.outbound.sender.peak_frames

    def sync_state(self) -> SyncState:
        """The SYNC objects this client holds (made by the first SYNC yield)."""
        if self._sync is None:
            codec = self.outbound.sender.codec
            # A format that diffs SYNC objects itself gets them whole: nothing kept here for it.
            whole = codec is not None and not codec.codec.sync_patches
            self._sync = SyncState(0 if whole else self._config.sync_memory)
        return self._sync

    async def call(self, event: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Call the client: send ``{"event", "call": n, "data"}`` and return its ``ws:result``.

        ``timeout`` defaults to the ``call_timeout`` setting (0 or None there:
        wait forever). Raises :class:`~monument_ws.protocol.errors.Timeout` when no
        answer comes in time, :class:`~monument_ws.protocol.errors.ConnectionLost` when
        the socket closes first, and the typed error the client answered with
        ``ws:error`` (e.g. NotFound when it performs no such event). On a socket whose wire
        format carries no calls (:attr:`~monument_ws.protocol.codecs.Codec.server_calls`),
        NotFound at once.
        """
        codec = self.outbound.sender.codec
        if codec is not None and not codec.codec.server_calls:
            raise NotFound(f"the {codec.codec.name} wire format cannot carry server calls")
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

    def resolve_call(self, call: Any, data: Any) -> bool:
        """The client answered server call ``call`` with ``ws:result`` (False: late or unknown)."""
        return self._calls.resolve(call, data)

    def reject_call(self, call: Any, error: MonumentWSError) -> bool:
        """The client answered server call ``call`` with ``ws:error`` (False: late or unknown)."""
        return self._calls.reject(call, error)

    # --- peer queue ---------------------------------------------------------

    def _peer_queues(self) -> PeerQueueStore:
        if self._queues is None:
            raise RuntimeError("this socket has no peer queues: it was not made by setup()")
        return self._queues

    async def enqueue(self, data: Any) -> int:
        """Queue ``data`` for this client (it waits for ``client.consume()``); returns its seq.

        Kept in the broker for ``peer_queue_ttl`` seconds, so it also reaches the
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

    # --- sending (the way out is self.outbound; these are the handler-facing names) ---

    async def send(self, event: str, data: Any = None) -> bool:
        """Push ``{"event", "data"}`` to this client; at most once, not recoverable.

        Waits while the send buffer is more than half full (backpressure).
        Returns False, without raising, once the socket takes no more frames
        (closed, or closed as a slow consumer); a socket that is closing
        gracefully still takes frames until its close frame is written. Data JSON
        cannot hold is not sent either: False, logged, and ``SEND_FAILED``
        (``error:ws``) says why, as it does for the other failures.
        """
        frame = self._push(event, data)
        return False if frame is None else await self.send_raw(frame)

    def send_nowait(self, event: str, data: Any = None) -> bool:
        """Like :meth:`send` without waiting; a full queue closes the socket with 4008."""
        frame = self._push(event, data)
        return False if frame is None else self.send_raw_nowait(frame)

    def _push(self, event: str, data: Any) -> bytes | None:
        """The push frame, or None (logged, reported as ``encoding``) when JSON cannot hold it."""
        try:
            return protocol.push(event, data)
        except TypeError as exc:
            self.log.warning("not sent: %r has data JSON cannot hold: %s", event, exc)
            self.outbound.failed("encoding", exc)
            return None

    def send_raw(self, frame: bytes, kind: int = OUT_PUSH) -> Coroutine[Any, Any, bool]:
        """Send an already encoded text frame, waiting while the queue is over half full.

        ``kind`` (a ``monument_ws.connection.stats.OUT_*`` constant) only labels the frame in
        the counters.
        """
        return self.outbound.send(frame, kind)

    def send_raw_nowait(
        self, frame: bytes, wire: bytes | None = None, kind: int = OUT_PUSH
    ) -> bool:
        """Send an already encoded text frame without waiting (False: refused, socket closing);
        see :meth:`Outbound.offer`."""
        return self.outbound.offer(frame, wire, kind)

    async def drain(self) -> None:
        """Wait until every queued frame has been handed to the transport (or the socket died)."""
        await self.outbound.sender.drain()

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
        request = self.admission.table.get(request_id)
        if request is None:
            return False
        return await self.outbound.answer(request, protocol.reply(event, request_id, data))

    # --- ending -------------------------------------------------------------

    async def finish(self, grace: float) -> None:
        """Stop taking requests and wait up to ``grace`` seconds for the running ones to end.

        The reader goes on meanwhile: every new request is refused with
        ``unavailable``. Returns at once when nothing runs. The graceful
        shutdown calls it before closing with 1001.
        """
        await self.admission.finish(grace)

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Close with ``code``; frames already queued are written first (up to 5 s).

        Until the close frame is written, frames still arrive and are
        answered (new requests with ``unavailable``); frames queued after
        that point are dropped and counted.
        """
        await self.outbound.close(code, reason)

    async def teardown(self) -> None:
        """The connection is over (the reader calls it last): drop the send buffer, fail the
        server calls, cancel the running handlers and wait for them."""
        # First: aiohttp may have written a close frame already (the client closed).
        self.outbound.shut()
        self._calls.fail_all(ConnectionLost("the socket closed"))
        await self.admission.close()


# --- the commands the socket answers itself (see monument_ws.connection.commands) ---------


def _ping(socket: Socket, frame: Frame) -> None:
    socket.send_raw_nowait(protocol.reply(frame.event, frame.id, {}), kind=OUT_REPLY)


def _cancel(socket: Socket, frame: Frame) -> Invalid | None:
    return socket.admission.cancel(frame)


def _result(socket: Socket, frame: Frame) -> None:
    if not socket.resolve_call(frame.raw.get("call"), frame.data):
        socket.outbound.dropped()  # late (timed out) or unknown call


def _error(socket: Socket, frame: Frame) -> None:
    error = from_error_frame(frame.raw.get("error"))
    if not socket.reject_call(frame.raw.get("call"), error):
        socket.outbound.dropped()


#: The inline commands of every socket, for :class:`~monument_ws.connection.commands.Commands`.
INLINE_COMMANDS: dict[str, InlineCommand] = {
    "ws:ping": _ping,
    "ws:cancel": _cancel,
    protocol.RESULT_EVENT: _result,
    protocol.ERROR_EVENT: _error,
}
