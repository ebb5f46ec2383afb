"""Text frames straight from aiohttp's frame parser to the socket: no reader task wake-up each.

The one module of monument_ws that reaches under aiohttp's public API.

With the public API, aiohttp's parser puts every frame it parses in a queue
and the socket's reader task takes it out with ``ws.receive()``: per frame a
future resolved, a turn of the event loop, a step of the reader task and the
``receive()`` coroutine -- about 23,800 instructions of a 124,700-instruction
echo request (callgrind, Python 3.11, aiohttp 3.14). :class:`TappedResponse`
gives the parser a queue of its own, :class:`TextTap`, that hands each text
frame to a callback the moment it is parsed (inside the protocol's
``data_received``) once the socket has attached one; everything else -- close,
ping, pong, binary frames, errors -- is queued for ``receive()`` as before, so
aiohttp's own close handshake, autoping and heartbeat work unchanged.

What it relies on, checked by ``tests/test_aiohttp_reader.py`` (which fails
when aiohttp changes underneath): the private ``aiohttp._websocket.reader``
classes ``WebSocketDataQueue`` (its ``feed_data`` overridable, its
``_buffer``) and ``WebSocketReader``, and ``WebSocketResponse._post_start``
as aiohttp 3.14 writes it (the tap replaces it, with the same steps). On any
other aiohttp, :func:`response` returns a plain ``WebSocketResponse`` and the
socket reads every frame the public way; ``pyproject.toml`` pins the verified
aiohttp versions.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import WSMsgType, web

#: aiohttp releases (major, minor) whose internals this module was verified against.
VERIFIED = ((3, 14),)

_Queue: Any
_Reader: Any
try:
    from aiohttp._websocket.reader import WebSocketDataQueue as _Queue
    from aiohttp._websocket.reader import WebSocketReader as _Reader
    from aiohttp.helpers import DEFAULT_CHUNK_SIZE
except ImportError:  # pragma: no cover - an aiohttp that moved its reader: read the public way
    _Queue, _Reader, DEFAULT_CHUNK_SIZE = object, None, 2**16


def _version() -> tuple[int, int]:
    major, minor = aiohttp.__version__.split(".")[:2]
    return int(major), int(minor)


#: Whether this aiohttp is one the tap was verified on (else sockets read the public way).
ENABLED = _Reader is not None and _version() in VERIFIED


class TextTap(_Queue):  # type: ignore[misc]
    """aiohttp's frame queue, with text frames handed to a callback instead, once attached.

    Until :meth:`attach` every frame is queued as aiohttp does; the socket
    attaches only when the queue is empty, so frames that arrived before it
    was ready are read from the queue first and the order is kept. The
    callback runs in the context given with it (the socket's), not in the
    protocol's.
    """

    __slots__ = ("context", "on_text")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_text: Callable[[bytes | str], None] | None = None
        self.context: contextvars.Context | None = None

    def feed_data(self, data: Any, size: int) -> None:
        on_text = self.on_text
        if on_text is not None and data.type is WSMsgType.TEXT:
            self.context.run(on_text, data.data)  # type: ignore[union-attr]
            return
        super().feed_data(data, size)

    @property
    def empty(self) -> bool:
        """No frame waits in the queue."""
        return not self._buffer

    def attach(
        self, on_text: Callable[[bytes | str], None] | None, context: contextvars.Context | None
    ) -> None:
        """From now on hand text frames to ``on_text``, run in ``context`` (None: queue them)."""
        self.on_text, self.context = on_text, context


class TappedResponse(web.WebSocketResponse):
    """A ``WebSocketResponse`` whose parser feeds a :class:`TextTap`."""

    def _post_start(self, request: Any, protocol: str | None, writer: Any) -> None:
        # aiohttp 3.14's _post_start, step for step, with the tap as the parser's queue.
        self._ws_protocol = protocol
        self._writer = writer
        self._reset_heartbeat()
        loop = self._loop
        assert loop is not None
        self._reader = TextTap(request._protocol, DEFAULT_CHUNK_SIZE, loop=loop)
        self._parser = _Reader(
            self._reader,
            self._max_msg_size,
            compress=bool(self._compress),
            decode_text=self._decode_text,
        )
        callback = None if self._heartbeat is None else self._on_data_received
        request.protocol.set_parser(self._parser, data_received_cb=callback)
        request.protocol.keep_alive(False)


def response(**kwargs: Any) -> web.WebSocketResponse:
    """A response whose text frames can be tapped on a verified aiohttp, else a plain one."""
    return TappedResponse(**kwargs) if ENABLED else web.WebSocketResponse(**kwargs)


def tap_of(ws: web.WebSocketResponse) -> TextTap | None:
    """The tap of a prepared response (None: read every frame with ``receive()``)."""
    reader = getattr(ws, "_reader", None)
    return reader if ENABLED and isinstance(reader, TextTap) else None
