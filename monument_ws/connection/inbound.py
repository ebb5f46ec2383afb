"""The way in: read one socket's frames until it closes, and decide per frame who takes it.

:meth:`Inbound.serve` is the socket's whole life after its welcome. Each text frame is
counted, shown to listeners, decoded, checked against the rate limit, passed
through the incoming hooks and the auth stage, then taken by an inline command
(``ws:ping``, ``ws:cancel``, ``ws:result``, ``ws:error``) or admitted as a
request (:class:`~monument_ws.connection.admission.Admission`). Guarantees:

* **Bad input never raises**: a refused frame gets a ``ws:error`` frame and
  the socket stays open, until ``max_bad_frames`` bad frames in a row close it
  with 1008. A text frame that is not UTF-8 closes it with 1007; a binary frame
  is refused as ``bad_frame``. On a socket of another wire format (an endpoint's codec,
  :mod:`monument_ws.protocol.codecs`) every message goes through the codec first, and each
  native frame it yields is taken as a text frame is (:meth:`Inbound._decoded`).
* **Floods end**: frames above ``rate_limit`` are refused with
  ``rate_limited``; a socket that goes on for ``rate_burst`` more refusals in
  one flooding episode is closed with 4029 (see
  :class:`~monument_ws.connection.limits.FloodGuard`), and the episode is logged once.
* **Order**: frames are taken in the order they arrived, whether they come
  from aiohttp's parser directly (:mod:`monument_ws.connection.reader`) or
  from the response's queue.
* **Nothing outlives the socket**: when reading ends, the send buffer is
  dropped, server → client calls fail with ConnectionLost and running handlers
  are cancelled (async generators get ``aclose()``).
"""

from __future__ import annotations

import asyncio
import contextvars
import time

from aiohttp import WebSocketError, WSMsgType, web

from ..protocol import frames as protocol
from ..protocol.codecs import CodecSession
from ..protocol.frames import CloseCode, ErrorCode, Frame, Invalid
from . import reader as aiohttp_reader
from .auth import AUTHENTICATED
from .dispatch import Dispatcher
from .limits import FloodGuard, Verdict
from .router import Route
from .socket import Socket
from .stats import IN_COMMAND, IN_EVENT, IN_INVALID, IN_REFUSED

#: What a socket may send before it is authenticated (with require_auth).
_BEFORE_AUTH = frozenset(name for name, command in protocol.COMMANDS.items() if command.before_auth)

#: Why the reader stops: the close code and reason it closes with.
_Close = tuple[int, str]

#: The message types a codec decodes.
_MESSAGES = frozenset((WSMsgType.TEXT, WSMsgType.BINARY))

_BINARY = Invalid(ErrorCode.BAD_FRAME, "binary frames are not supported; send JSON text")


class Inbound:
    """The reader of one socket."""

    __slots__ = ("_bad_in_a_row", "_closer", "_dispatch", "_guard", "_socket", "_ws")

    def __init__(self, socket: Socket, ws: web.WebSocketResponse, dispatch: Dispatcher) -> None:
        config = dispatch.config
        self._socket = socket
        self._ws = ws
        self._dispatch = dispatch
        self._guard = (
            FloodGuard(config.rate_limit, config.rate_burst, time.monotonic)
            if config.rate_limit
            else None
        )
        self._bad_in_a_row = 0
        self._closer: asyncio.Task[None] | None = None

    async def serve(self) -> None:
        """Read frames until the socket closes, then clean up. Never raises on client input.

        On a verified aiohttp, text frames come through the response's tap
        (:mod:`monument_ws.connection.reader`) as soon as they are parsed, and
        this loop only sees the rest (close, binary) and the text frames that
        were queued before the socket was ready: the tap is attached once
        those were read, so frames are taken in the order they arrived.
        """
        codec = self._socket.sender.codec
        # A socket of another wire format reads every message here, through its codec.
        tap = aiohttp_reader.tap_of(self._ws) if codec is None else None
        # Frames from the tap are taken in this task's context (log ids, the app's context
        # variables), as frames read here are, so requests start in the same world either way.
        context = contextvars.copy_context() if tap is not None else None
        try:
            if tap is not None and tap.empty:
                tap.attach(self._tapped, context)
            async for msg in self._ws:
                if codec is not None and msg.type in _MESSAGES:
                    close = self._decoded(codec, msg.data, msg.type is WSMsgType.BINARY)
                elif msg.type is WSMsgType.TEXT:
                    close = self._on_text(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    stats = self._dispatch.stats
                    stats.frames_in += 1
                    stats.frames_in_by[IN_INVALID] += 1
                    close = self._refuse(_BINARY)
                else:
                    if msg.type is WSMsgType.ERROR and isinstance(msg.data, WebSocketError):
                        # aiohttp closed the socket itself with this code (e.g. 1009, too big)
                        # and then may record 1006, as the client's answer could not be read.
                        self._socket.outbound.closed_with(msg.data.code, by_reader=True)
                    continue
                if close is not None:
                    if tap is not None:  # what the client sends from now on is not taken
                        tap.attach(None, None)
                    await self._socket.close(*close)
                    break
                if tap is not None and tap.on_text is None and tap.empty:
                    tap.attach(self._tapped, context)
        finally:
            if tap is not None:
                tap.attach(None, None)
            await self._socket.teardown()

    def _tapped(self, text: str | bytes) -> None:
        """A text frame from the tap, inside the connection's ``data_received``: no task runs
        this, so a close it calls for is started as a task, and what follows is dropped."""
        if self._closer is not None or self._socket.outbound.abandoned:
            return
        try:
            close = self._on_text(text)
        except Exception:  # a bug of ours; the client must not be able to take the server down
            self._socket.log.exception("taking a frame failed")
            close = CloseCode.INTERNAL, "internal error"
        if close is not None:
            self._closer = asyncio.get_running_loop().create_task(self._socket.close(*close))

    def _decoded(self, codec: CodecSession, data: bytes, binary: bool) -> _Close | None:
        """One message of another wire format: each native frame its codec decodes it to is
        taken as a text frame is; what it refuses is refused like a bad frame (counted in
        ``max_bad_frames``, or closing when it says so); its replies are written as they are."""
        try:
            items = codec.decode(data, binary)
        except Exception:  # a codec's bug: the client must not be able to take the server down
            self._socket.log.exception("decoding a %s message failed", codec.codec.name)
            return CloseCode.INTERNAL, "internal error"
        for item in items:
            if isinstance(item, bytes):
                close = self._on_text(item)
            elif isinstance(item, Invalid):
                stats = self._dispatch.stats
                stats.frames_in += 1
                stats.frames_in_by[IN_INVALID] += 1
                self._socket.frames_in += 1
                close = self._refuse(item)
            else:
                self._socket.outbound.offer(b"", item.wire)
                close = None
            if close is not None:
                return close
        return None

    def _on_text(self, text: str | bytes) -> _Close | None:
        """Take one text frame; returns how to close when the socket must close."""
        dispatch = self._dispatch
        socket = self._socket
        stats = dispatch.stats
        stats.frames_in += 1
        socket.frames_in += 1
        middleware = dispatch.middleware
        if middleware is not None and middleware.listeners:
            middleware.show(socket, text)
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
            hooked = middleware.run_incoming(frame, socket)
            if isinstance(hooked, Invalid):
                stats.refused["middleware"] += 1
                socket.outbound.error_now(hooked.code, hooked.message, hooked.id)
                return None
            frame = hooked
        event = frame.event
        if (
            dispatch.config.require_auth
            and socket.stage != AUTHENTICATED
            and event not in _BEFORE_AUTH
        ):
            self._unauthenticated(frame)
            return None
        if frame.is_command:
            stats.frames_in_by[IN_COMMAND] += 1
            inline = dispatch.commands.inline.get(event)
            if inline is None:
                socket.admission.start(frame, Route.COMMAND)
                return None
            done = inline(socket, frame)
            return None if done is None else self._refuse(done)
        stats.frames_in_by[IN_EVENT] += 1
        socket.admission.start(frame, dispatch.router.route(event, dispatch.bus))
        return None

    def _unauthenticated(self, frame: Frame) -> None:
        stats = self._dispatch.stats
        stats.frames_in_by[IN_REFUSED] += 1
        stats.refused["unauthenticated"] += 1
        if frame.id is not None:
            self._socket.outbound.error_now(
                ErrorCode.UNAUTHORIZED, "authenticate with ws:auth first", frame.id
            )

    def _rate_limited(self, frame: Frame | Invalid, verdict: Verdict) -> _Close | None:
        """A frame over the rate: refused; once per flooding episode logged; past it, close."""
        config, stats = self._dispatch.config, self._dispatch.stats
        stats.frames_in_by[IN_REFUSED] += 1
        stats.refused["frame_rate"] += 1
        if verdict is Verdict.CLOSE:
            self._socket.log.warning(
                "still flooding after %d refused frames; closing with 4029", config.rate_burst
            )
            return CloseCode.RATE_LIMITED, "too many frames"
        if verdict is Verdict.FLOODING:
            self._socket.log.warning(
                "over %g frames/s; refusing frames until it slows down", config.rate_limit
            )
        if frame.id is not None:
            self._socket.outbound.error_now(
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
        self._socket.outbound.error_now(invalid.code, invalid.message, invalid.id)
        if self._bad_in_a_row >= self._dispatch.config.max_bad_frames:
            return CloseCode.POLICY, "too many bad frames"
        return None
