"""The way out of one socket: outgoing hooks, counters, answers, and closing a client that
stopped reading.

Every frame to a client passes through its :class:`Outbound`, which hands it to
the socket's :class:`~monument_ws.connection.sender.Sender` (the one bounded
send path; its docstring states the bound). A frame refused because the bound
was crossed closes the client as a slow consumer (4008): it never holds the
server's memory or slows anyone else. A closing socket writes what is queued
first (up to 5 s), then closes; frames queued after its close frame are dropped
and counted.

A failed send is reported on the bus as ``SEND_FAILED`` (``error:ws``, see
:mod:`monument_ws.signals`): a socket that takes no more frames once, a slow
consumer once, each frame the application's data could not be encoded for.
The report runs in a task of its own, so no sender waits for it or sees its
receivers' exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

from aiohttp import web

from ..protocol import frames as protocol
from ..protocol.errors import ConnectionLost
from ..protocol.frames import CloseCode, ErrorCode, truncate
from ..signals import SEND_FAILED, announce
from .requests import Request, RequestTable
from .sender import Sender
from .stats import OUT_ERROR, OUT_PUSH, OUT_REPLY, Stats

if TYPE_CHECKING:
    from ..bus import EventBus

#: Seconds a slow consumer's close handshake may take before the connection is aborted.
_SLOW_CLOSE_GRACE = 2.0

#: Seconds a closing socket waits for its queued frames to be written before it closes anyway.
_CLOSE_DRAIN = 5.0

#: The send failures reported once per socket, each a bit of ``Outbound._reported``.
_ONCE: Final = {"closed": 1, "slow_consumer": 2}

#: SEND_FAILED reports still running (held so they are not garbage-collected midway).
_REPORTS: set[asyncio.Task[None]] = set()


class OutgoingHooks(Protocol):
    """What the send path needs of the middleware (:class:`~.middleware.Middleware`)."""

    @property
    def outgoing_hooks(self) -> Sequence[Any]: ...

    def run_outgoing(self, frame: bytes, socket: Any) -> bytes | None: ...


class Owner(Protocol):
    """The socket an :class:`Outbound` belongs to, as hooks and logs see it."""

    @property
    def id(self) -> str: ...

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]: ...


class Outbound:
    """The send side of one socket. Methods that take a ``kind`` (a ``stats.OUT_*``
    constant) use it only to label the frame in the counters."""

    __slots__ = (
        "_bus",
        "_closer",
        "_hooks",
        "_owner",
        "_reported",
        "_stats",
        "_table",
        "_transport",
        "_ws",
        "close_code",
        "closing",
        "sender",
    )

    def __init__(
        self,
        owner: Owner,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        sender: Sender,
        table: RequestTable,
        stats: Stats,
        hooks: OutgoingHooks | None,
        bus: EventBus | None = None,
    ) -> None:
        self._owner = owner
        self._bus = bus
        self._reported = 0  # the _ONCE failures reported so far
        self._ws = ws
        self._transport = transport
        self.sender = sender
        self._table = table
        self._stats = stats
        self._hooks = hooks
        #: no new requests; the close follows (a graceful close, or a slow consumer's)
        self.closing = False
        #: the code this server closed the socket with, when it closed first; 1006 when the
        #: connection ended with no close code either way (:meth:`shut`); None otherwise (open,
        #: or the client closed first: aiohttp's ``close_code`` has its code). What
        #: ``Socket.close_code`` reports first.
        self.close_code: int | None = None
        self._closer: asyncio.Task[None] | None = None

    @property
    def abandoned(self) -> bool:
        """The client stopped reading and is being closed with 4008: nothing more is taken."""
        return self._closer is not None

    async def send(self, frame: bytes, kind: int = OUT_PUSH) -> bool:
        """Send an encoded text frame, waiting while the queue is over half full."""
        hooks = self._hooks
        if hooks is not None and hooks.outgoing_hooks:
            hooked = self._hooked(hooks, frame)
            if hooked is None:
                return True  # refused by a hook: not sent, but the socket is fine
            frame = hooked
        if not await self.sender.send(frame):
            self._not_sent()
            return False
        self._stats.frames_out_by[kind] += 1
        return True

    def offer(self, frame: bytes, wire: bytes | None = None, kind: int = OUT_PUSH) -> bool:
        """Send an encoded text frame without waiting (False: refused, the socket is closing).

        ``wire`` is the same frame already framed by :func:`protocol.text_frame`;
        fan-out passes it so many sockets share one buffer. A frame given with
        its ``wire`` already went through the outgoing hooks (once, for every
        recipient); one without goes through them now, for this socket.
        """
        hooks = self._hooks
        if wire is None and hooks is not None and hooks.outgoing_hooks:
            hooked = self._hooked(hooks, frame)
            if hooked is None:
                return True
            frame = hooked
        if not self.sender.offer(frame, wire):
            self._not_sent()
            return False
        self._stats.frames_out_by[kind] += 1
        return True

    def _hooked(self, hooks: OutgoingHooks, frame: bytes) -> bytes | None:
        """``frame`` after the outgoing hooks; None, counted as dropped, when one refused it."""
        hooked = hooks.run_outgoing(frame, self._owner)
        if hooked is None:
            self._stats.dropped += 1
        return hooked

    async def answer(self, request: Request, frame: bytes) -> bool:
        """Send the one final answer of ``request`` (a no-op once it was answered).

        The common case -- no outgoing hook, nothing queued -- is written at
        once without another coroutine: this repeats the tail of :meth:`send`
        on purpose (delegating to it costs 2,800 instructions per request, 3 %,
        by callgrind).
        """
        if request.answered:  # Request.claim(), inlined on the reply path
            return False
        request.answered = True
        hooks = self._hooks
        if hooks is not None and hooks.outgoing_hooks:
            return await self.send(frame, OUT_REPLY)
        sender = self.sender
        if not sender.offer(frame):
            self._not_sent()
            return False
        self._stats.frames_out_by[OUT_REPLY] += 1
        if sender.queued_bytes and sender.pressed:
            await sender.drain()
        return True

    async def fail(self, request: Request, code: ErrorCode, message: str) -> None:
        """End ``request`` with an error frame (counted; sent when the request has an id)."""
        self._stats.error(code, message, self._owner.id)
        if request.id is not None:
            await self.answer(request, protocol.error(code, message, request.id))

    def fail_now(self, code: ErrorCode, message: str, request_id: Any) -> None:
        """End a request that ran inline with an error: counted, and sent as its answer when
        it has an id (like :meth:`fail`, without waiting)."""
        self._stats.error(code, message, self._owner.id)
        if request_id is not None:
            self.offer(protocol.error(code, message, request_id), kind=OUT_REPLY)

    def error_now(self, code: ErrorCode, message: str, request_id: Any = None) -> None:
        """Send an error frame without waiting (counted in the stats)."""
        self._stats.error(code, message, self._owner.id)
        self.offer(protocol.error(code, message, request_id), kind=OUT_ERROR)

    def dropped(self) -> None:
        """Count a frame that was taken and dropped on purpose (e.g. a late call answer)."""
        self._stats.dropped += 1

    def flush(self) -> None:
        """Write the frames gathered in this loop turn (see :meth:`Sender.gather`)."""
        if not self.sender.flush():
            self._not_sent()

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``, writing what is queued first (up to 5 s; not for 4008)."""
        if self._ws.closed:
            return
        self.closing = True
        self.closed_with(code)
        self._table.stop()
        if code != CloseCode.SLOW_CONSUMER:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CLOSE_DRAIN):
                    await self.sender.drain()
        codec = self.sender.codec
        if codec is not None:  # another wire format: its last words, and its close code
            last, code = codec.closing(code, reason)
            if last:
                self.sender.offer(b"", last)
        self._stats.send_queue_dropped += self.sender.close()
        await self._ws.close(code=code, message=truncate(reason).encode())

    def closed_with(self, code: int, *, by_reader: bool = False) -> None:
        """The server sends a close frame with ``code``: remembered as :attr:`close_code` unless
        a close code is known already (the client's close frame came first, or an earlier one).
        ``by_reader``: aiohttp's reader closed the socket for a protocol error (1009, 1002, ...),
        and set that code as its own before the client could answer."""
        if self.close_code is None and (by_reader or self._ws.close_code is None):
            self.close_code = code

    def shut(self) -> None:
        """The connection is over: drop what is queued (counted); nothing more is taken. With no
        close code known, it dropped (e.g. the client's TCP connection was reset): 1006."""
        self.closed_with(CloseCode.ABNORMAL)
        self.closing = True
        self._stats.send_queue_dropped += self.sender.close()

    def failed(self, reason: str, error: BaseException) -> None:
        """A send to this socket failed: emit ``SEND_FAILED`` with ``reason`` and ``error`` in a
        task of its own (``"closed"`` and ``"slow_consumer"`` once per socket). Never raises."""
        bus = self._bus
        once = _ONCE.get(reason, 0)
        if bus is None or self._reported & once:
            return
        self._reported |= once
        if not bus.has_receivers(SEND_FAILED):
            return
        task = asyncio.get_running_loop().create_task(
            announce(bus, SEND_FAILED, socket=self._owner, reason=reason, error=error)
        )
        _REPORTS.add(task)
        task.add_done_callback(_REPORTS.discard)

    def _not_sent(self) -> None:
        """The sender refused a frame. The first time that is because its bound was crossed
        (the client does not read), close it with 4008; otherwise it is closing already."""
        overflow = self.sender.overflow
        if overflow is None:
            self.failed("closed", ConnectionLost("the socket is closed"))
            return
        if self._closer is not None:
            return
        frames, queued = overflow
        stats = self._stats
        stats.slow_consumers += 1
        stats.send_queue_dropped += frames + 1
        self._owner.log.warning(
            "send buffer overflowed (%d frames, %d bytes); closing as a slow consumer",
            frames,
            queued,
        )
        self.closing = True
        self._table.stop()
        self._closer = asyncio.get_running_loop().create_task(self._close_slow_consumer())
        self.failed(
            "slow_consumer",
            ConnectionLost(
                f"the send buffer overflowed ({frames} frames, {queued} bytes): "
                "closed as a slow consumer (4008)"
            ),
        )

    async def _close_slow_consumer(self) -> None:
        """Send 4008, but a client that does not read cannot take even that: after a short
        grace the connection is aborted, so its buffers are freed now, not at a TCP timeout."""
        self.closed_with(CloseCode.SLOW_CONSUMER)
        try:
            async with asyncio.timeout(_SLOW_CLOSE_GRACE):
                await self._ws.close(
                    code=CloseCode.SLOW_CONSUMER, message=b"slow consumer", drain=False
                )
        except (TimeoutError, ConnectionError):
            if self._transport is not None:
                self._transport.abort()
